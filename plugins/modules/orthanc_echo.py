#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: orthanc_echo
short_description: C-ECHO from an Orthanc archive's own AE through its REST API, and its modality table against the registry
version_added: 0.1.0
description:
  - Many sources in a hospital can never run an Ansible module, an archive appliance among them; yet the archive's
    table of remote AEs (an old IP, a wrong port, a typo in an AE title) is where C-MOVE and forwarding break. This
    module asks an L(Orthanc,https://www.orthanc-server.com/) archive to echo each peer itself, from its own AE title,
    source address and configuration, and compares its modality table with the inventory's AE registry.
  - A peer that is a modality of Orthanc (found by its AE title, or named in O(peers[].modality)) is echoed with
    C(POST /modalities/{id}/echo), so Orthanc's own entry (host, port, C(LocalAet), C(UseDicomTls)) is what gets
    tested; RV(results[].orthanc.modality) says which entry was used, and the message names every field of that entry
    that differs from the peer as given. Any other peer is echoed with C(POST /tools/dicom-echo) at the address
    given, and RV(results[].orthanc.registered) is false.
  - Results use the schema and the outcomes of M(dicom.network.echo) as far as Orthanc's answer allows, and each
    message ends with Orthanc's own error text, verbatim, and says which Orthanc echoed, as which AE. What Orthanc
    1.10 answers for each kind of peer was measured; see RV(results[].outcome) for what it cannot tell apart.
  - Runs wherever the REST API is reachable, typically on the controller (C(delegate_to=localhost)). No DICOM
    library is needed there.
  - Read-only. The echoes also run in check mode, and the module never reports C(changed).
author:
  - dicom.network contributors (@dicom-network)
notes:
  - The password is never logged or returned. A URL with credentials in it (V(https://user:pass@host)) is refused.
  - Redirects are not followed, so that the credentials go to O(url) only, and C(~/.netrc) is not read.
  - Orthanc 1.10.1 as packaged in Debian 12 crashes (its HTTP server, civetweb, with OpenSSL 3) on the first HTTPS
    request when C(SslEnabled) is set (measured). Put a TLS reverse proxy in front of such an Orthanc and point
    O(url) at the proxy.
  - Orthanc reports a rejected association without the A-ASSOCIATE-RJ reason and source, and a failed C-ECHO
    without its status. RV(results[].reject) and RV(results[].status) are then null, and V(reject) expectations
    are met by any rejection, including a busy peer's. M(dicom.network.echo) from a managed host tells these apart.
attributes:
  action:
    support: full
    description: An action plugin on the controller writes O(journal) and adds RV(echoed_from).
  check_mode:
    support: full
    description: The echoes are read-only and run in check mode as well.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Any host that reaches the REST API.
options:
  url:
    description:
      - Base URL of the Orthanc REST API, V(http://) or V(https://), for example V(https://pacs.example.org:8042).
    type: str
    required: true
  username:
    description: User name for HTTP basic authentication (Orthanc's C(RegisteredUsers)).
    type: str
  password:
    description: Password of O(username). Never logged or returned.
    type: str
  validate_certs:
    description: Verify the TLS certificate of an V(https://) O(url). Switch it off only to diagnose.
    type: bool
    default: true
  ca_path:
    description: PEM file with the CA certificate(s) that sign the API's certificate, instead of the system's.
    type: path
  use_proxy:
    description: Use the proxy of the environment (C(https_proxy), C(http_proxy), C(no_proxy)).
    type: bool
    default: true
  http_timeout:
    description:
      - Seconds to wait for each answer of the REST API other than an echo (C(/system), C(/modalities)).
      - An echo request waits up to 4 x O(timeout) + O(http_timeout) seconds, because Orthanc applies O(timeout)
        to each step of the echo (TCP connect, association, C-ECHO, release). A request that gets no answer in that
        time is a V(timeout) result in the V(echo) phase.
    type: float
    default: 10
  timeout:
    description:
      - The C(Timeout) Orthanc uses for each echo, in whole seconds (1 to 3600), for each step of the echo.
    type: int
    default: 10
  parallel:
    description: Echo requests sent to Orthanc at the same time (1 to 32).
    type: int
    default: 4
  peers:
    description:
      - The peers Orthanc must echo, each with its own expectation, as in M(dicom.network.echo). Results come back
        in this order.
      - Optional when O(registry) is given.
    type: list
    elements: dict
    suboptions:
      ae_title:
        description: The called AE title of the peer. Required. Also how a modality of Orthanc is found for it.
        type: str
      host:
        description: Host name or address of the peer. Required.
        type: str
      port:
        description: TCP port of the peer's DICOM listener, 1 to 65535. Defaults to 104.
        type: raw
      name:
        description: A label for the peer in results and messages, unique in one call. Defaults to O(peers[].ae_title).
        type: str
      expect:
        description:
          - V(accept) (the default), V(reject) or V(blocked), with the meaning of M(dicom.network.echo)'s
            O(dicom.network.echo#module:peers[].expect).
        type: str
      calling_ae_title:
        description:
          - The calling AE title the peer is echoed with.
          - For a modality of Orthanc it must equal the AE title Orthanc really calls it with (that modality's
            C(LocalAet), else Orthanc's C(DicomAet)), or the task fails before any echo and says which it is. This is
            the check that the inventory's calling AE is Orthanc's.
          - For a peer that is no modality of Orthanc, it is sent as C(LocalAet); without it Orthanc calls as its
            C(DicomAet).
        type: str
      modality:
        description:
          - The symbolic name of the Orthanc modality to echo this peer through. Without it, the modality with the
            peer's AE title is used (when several have it, the one with its host and port too), and a peer with no
            such modality is echoed through C(/tools/dicom-echo).
          - A name Orthanc does not have fails the task before any echo.
        type: str
  registry:
    description:
      - The inventory's AE registry (C(dicom_aes)), name -> C({ae_title, host, port}) (other keys are ignored).
        Compared with Orthanc's modality table in RV(drift).
      - An entry without host and port (an AE that only calls, such as a modality that sends) is compared by its AE
        title alone.
      - The entry with Orthanc's own C(DicomAet) is the archive itself and is not compared. Pass only the AEs Orthanc
        must know.
    type: dict
  registry_required:
    description:
      - The names of O(registry) that Orthanc must have as modalities (the AEs it must reach); only they are
        reported missing in RV(drift). Every O(registry) AE still counts as known.
      - Default, every entry of O(registry).
    type: list
    elements: str
  fail_on:
    description:
      - V(unexpected) fails the task when any peer's outcome does not match its expectation; V(never) always returns
        the results.
    type: str
    choices: [unexpected, never]
    default: unexpected
  fail_on_drift:
    description: Also fail the task when RV(drift) finds differences.
    type: bool
    default: false
  journal:
    description:
      - Absolute path of a file on the B(controller) where the action plugin also writes this call's result as
        soon as it returns (mode 0640; the directory must exist), as M(dicom.network.echo) does. The role
        C(dicom.network.echo_audit) uses it. The password is never in it.
    type: path
seealso:
  - module: dicom.network.echo
  - name: Orthanc REST API
    description: The endpoints this module calls, C(/system), C(/modalities), C(/modalities/{id}/echo), C(/tools/dicom-echo).
    link: https://orthanc.uclouvain.be/api/
"""

EXAMPLES = r"""
- name: Echo the workstations from the archive's own AE, and compare its modality table with the registry
  dicom.network.orthanc_echo:
    url: https://pacs.example.org:8042
    username: "{{ orthanc_api_user }}"
    password: "{{ orthanc_api_password }}"
    ca_path: /etc/pki/hospital-ca.pem
    peers:
      - {name: ws_reading_1, ae_title: WS_READ_1, host: 192.0.2.51, port: 104}
      - {name: ct_a1, ae_title: CT_A1, host: 192.0.2.41, port: 104}
      - {name: lab, ae_title: LAB_SCP, host: 192.0.2.90, port: 104, expect: blocked}
    registry: "{{ dicom_aes }}"
    fail_on: never
  delegate_to: localhost
  register: archive_echo

- name: Show what differs between Orthanc and the inventory
  ansible.builtin.debug:
    var: archive_echo.drift
"""

RETURN = r"""
msg:
  description:
    - One line naming every peer whose outcome differs from its expectation (as M(dicom.network.echo) does),
      followed by the drift found when O(registry) is given.
  returned: always
  type: str
  sample: "1 of 2 peer(s) not as expected: ws_reading_1 (refused during connect, expected accept);
    configuration drift: mismatched: ws_reading_1 port 11113 in Orthanc's 'ws1', 104 in the registry"
orthanc:
  description: The Orthanc that echoed, from C(GET /system).
  returned: when the API answered
  type: dict
  contains:
    url:
      description: O(url), without a trailing slash.
      type: str
      sample: https://pacs.example.org:8042
    ae_title:
      description: Orthanc's C(DicomAet).
      type: str
      sample: PACS_ARCHIVE
    name:
      description: Orthanc's C(Name).
      type: str
      sample: MyOrthanc
    version:
      description: Orthanc's version.
      type: str
      sample: 1.10.1
    api_version:
      description: Orthanc's REST API version.
      type: int
      sample: 16
    dicom_port:
      description: Orthanc's own DICOM port.
      type: int
      sample: 4242
modalities:
  description: Orthanc's modality table (C(GET /modalities?expand)), id -> the keys that decide how it echoes.
  returned: when the API answered
  type: dict
  sample: {"ws1": {"ae_title": "WS_READ_1", "host": "192.0.2.51", "port": 104, "local_ae_title": null, "tls": false}}
results:
  description:
    - One entry per peer, in the order of O(peers), with the keys of M(dicom.network.echo)'s
      RV(dicom.network.echo#module:results) and RV(results[].echoed_by) and RV(results[].orthanc).
    - Keys Orthanc does not report are null (C(source_address), C(rtt_ms), C(peer), C(transfer_syntax),
      C(tls_certificate), and the phases of C(timings_ms) but C(total)); C(services) is empty.
  returned: when O(peers) is given
  type: list
  elements: dict
  contains:
    name:
      description: The peer's label.
      type: str
      sample: ws_reading_1
    ae_title:
      description: The called AE title as given.
      type: str
      sample: WS_READ_1
    host:
      description: The host as given.
      type: str
      sample: 192.0.2.51
    port:
      description: The port as given.
      type: int
      sample: 104
    address:
      description: The address Orthanc echoed (its modality's C(Host) for a registered peer) when it is an IP address, else null.
      type: str
      sample: 192.0.2.51
    source_address:
      description: Always null; the source is Orthanc's host.
      type: str
      sample: null
    calling_ae_title:
      description:
        - The calling AE Orthanc used, its modality's C(LocalAet), else O(peers[].calling_ae_title) for an unregistered
          peer, else Orthanc's C(DicomAet).
      type: str
      sample: PACS_ARCHIVE
    expect:
      description: The expectation.
      type: str
      sample: accept
    outcome:
      description:
        - As in M(dicom.network.echo), from Orthanc's answer (Orthanc 1.10.1, measured). V(success) HTTP 200.
          V(refused), V(unreachable) (no route, network unreachable) and V(timeout) in the V(connect) phase from
          DCMTK's C(TCP Initialization Error). V(dns_error) C(Attempt to connect to unknown host). V(tls_error)
          C(TLS error) (a modality with C(UseDicomTls)). V(rejected) C(DUL Association Rejected), with
          RV(results[].reject) null because Orthanc does not report the reason. V(timeout) in the V(associate)
          phase C(DUL network read timeout), in the V(echo) phase C(DIMSE No data available). V(aborted)
          C(Peer aborted Association) (V(associate) or V(echo) phase) and a TCP reset. V(context_rejected)
          OrthancStatus 2015, no acceptable presentation context. V(protocol_error) C(Unrecognized PDU type).
        - V(status_failure) with RV(results[].status) null for Orthanc's empty HTTP 500, which it gives when the
          peer answers the C-ECHO with a non-success status (measured with 0xC000 and 0x0122).
        - V(protocol_error) also for any other Orthanc error, quoted verbatim in the message; it meets no
          expectation, so nothing is assumed.
        - V(timeout) in the V(echo) phase when Orthanc itself does not answer the echo request in time (see O(http_timeout)).
      type: str
      sample: refused
    ok:
      description: Whether RV(results[].outcome) meets RV(results[].expect).
      type: bool
      sample: false
    phase:
      description: Where the outcome was decided, as in M(dicom.network.echo).
      type: str
      sample: connect
    message:
      description: One line; it ends with Orthanc's own text, who echoed, through which endpoint, and how Orthanc's entry differs from the peer as given.
      type: str
      sample: "TCP connection from Orthanc to the peer refused (no listener on that port); Orthanc: Error in the network
        protocol (OrthancStatus 9): DicomAssociation - connecting to AET \"WS_READ_1\": TCP Initialization Error:
        Connection refused; echoed by Orthanc at https://pacs.example.org:8042 as AE PACS_ARCHIVE through modality
        'ws1'; Orthanc's entry differs from the inventory: port 11113 (inventory 104)"
    status:
      description: 0 on success, else null (Orthanc does not report the C-ECHO-RSP status).
      type: int
      sample: 0
    reject:
      description: Always null (Orthanc does not report the A-ASSOCIATE-RJ details).
      type: dict
      sample: null
    rtt_ms:
      description: Always null.
      type: dict
      sample: null
    timings_ms:
      description: C(total) is the wall time of the echo request in milliseconds; the other phases are null.
      type: dict
      sample: {"connect": null, "associate": null, "echo": null, "release": null, "total": 14.2}
    peer:
      description: Always null.
      type: dict
      sample: null
    transfer_syntax:
      description: Always null.
      type: str
      sample: null
    services:
      description: Always empty.
      type: list
      elements: dict
      sample: []
    tls:
      description: Whether Orthanc echoed over DICOM TLS (the modality's C(UseDicomTls)).
      type: bool
      sample: false
    tls_certificate:
      description: Always null (Orthanc does not report the peer's certificate).
      type: dict
      sample: null
    attempts:
      description: Always 1 (no retries).
      type: int
      sample: 1
    earlier_attempts:
      description: Always empty.
      type: list
      elements: dict
      sample: []
    started_at:
      description: When the echo request was sent, ISO 8601 in UTC.
      type: str
      sample: "2026-12-07T14:03:12.345+00:00"
    echoed_by:
      description: Who echoed, C(Orthanc at <url> as AE <calling AE>).
      type: str
      sample: Orthanc at https://pacs.example.org:8042 as AE PACS_ARCHIVE
    orthanc:
      description: Orthanc's side of this echo.
      type: dict
      sample: {"url": "https://pacs.example.org:8042", "ae_title": "PACS_ARCHIVE", "endpoint": "/modalities/ws1/echo",
               "modality": "ws1", "registered": true, "target": {"ae_title": "WS_READ_1", "host": "192.0.2.51",
               "port": 11113}, "http_status": 500, "orthanc_status": 9, "error": "Error in the network protocol",
               "details": "DicomAssociation - connecting to AET \"WS_READ_1\": TCP Initialization Error: Connection refused"}
      contains:
        url:
          description: O(url).
          type: str
        ae_title:
          description: Orthanc's C(DicomAet).
          type: str
        endpoint:
          description: The REST path of the echo request.
          type: str
        modality:
          description: The modality id used, or null for C(/tools/dicom-echo).
          type: str
        registered:
          description: Whether the peer was echoed through one of Orthanc's modalities.
          type: bool
        target:
          description: The AE title, host and port Orthanc echoed.
          type: dict
        http_status:
          description: The HTTP status of Orthanc's answer, or null when it did not answer in time.
          type: int
        orthanc_status:
          description: Orthanc's C(OrthancStatus) (9 network protocol, 2015 no presentation context), or null.
          type: int
        error:
          description: Orthanc's C(Message), or null.
          type: str
        details:
          description: Orthanc's C(Details), DCMTK's text, verbatim, or null.
          type: str
echoed_from:
  description: What the audit's reports show as where the echoes came from, C(Orthanc REST at <url>).
  returned: always
  type: str
  sample: Orthanc REST at https://pacs.example.org:8042
summary:
  description: Counts over all peers, as in M(dicom.network.echo).
  returned: when O(peers) is given
  type: dict
  sample: {"total": 2, "ok": 1, "failed": 1, "by_outcome": {"refused": 1, "success": 1}, "duration_ms": 31.0}
drift:
  description: O(registry) against Orthanc's modality table, when O(registry) is given.
  returned: when O(registry) is given
  type: dict
  contains:
    in_sync:
      description: Whether nothing differs.
      type: bool
      sample: false
    missing:
      description: Registry AEs that no modality of Orthanc stands for (C(name), C(ae_title), C(host), C(port)).
      type: list
      elements: dict
      sample: [{"name": "ct_a2", "ae_title": "CT_A2", "host": "192.0.2.42", "port": 104}]
    unknown:
      description: Modalities of Orthanc that stand for no registry AE (C(modality), C(ae_title), C(host), C(port)).
      type: list
      elements: dict
      sample: [{"modality": "old-ct", "ae_title": "CT_OLD", "host": "192.0.2.49", "port": 104}]
    mismatches:
      description:
        - One entry per field that differs between a registry AE and its modality (C(ae_title), C(host) or
          C(port); hosts compared as written, case-insensitive).
        - A registry AE is matched to the modality with its AE title, else to the modality named like it, else to
          the only modality with its host and port, so that a typo in an AE title shows here.
      type: list
      elements: dict
      sample: [{"name": "ws_reading_1", "modality": "ws1", "field": "port", "registry": 104, "orthanc": 11113}]
    matched:
      description: Registry AEs whose modality has the same AE title, host and port (C(name), C(modality)).
      type: list
      elements: dict
      sample: [{"name": "ct_a1", "modality": "ct-a1"}]
    skipped:
      description: Registry names with Orthanc's own AE title (the archive itself), not compared.
      type: list
      elements: str
      sample: [pacs_archive]
    summary:
      description: Counts (C(compared), C(matched), C(missing), C(unknown), C(mismatches)).
      type: dict
      sample: {"compared": 3, "matched": 1, "missing": 1, "unknown": 1, "mismatches": 1}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import summarize, summary_message
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    PEER_ARGUMENT_OPTIONS, EchoInputError, validate_request)
from ansible_collections.dicom.network.plugins.module_utils.orthanc_rest import (
    OrthancApiError,
    OrthancClient,
    check_echo_timeout,
    check_http_timeout,
    check_parallel,
    check_registry,
    compare_registry,
    drift_message,
    modality_summary,
    plan_echoes,
    read_modalities,
    read_system,
    run_echoes,
    split_peers,
)
from ansible_collections.dicom.network.plugins.module_utils.rest_url import check_url


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            use_proxy=dict(type="bool", default=True),
            http_timeout=dict(type="float", default=10),
            timeout=dict(type="int", default=10),
            parallel=dict(type="int", default=4),
            peers=dict(
                type="list",
                elements="dict",
                # Checked by validate_request() and split_peers() instead, whose errors name the entry.
                options=dict(PEER_ARGUMENT_OPTIONS, modality=dict(type="str")),
            ),
            registry=dict(type="dict"),
            registry_required=dict(type="list", elements="str"),
            fail_on=dict(type="str", default="unexpected", choices=["unexpected", "never"]),
            fail_on_drift=dict(type="bool", default=False),
            # Consumed by the action plugin on the controller; listed so the documentation matches.
            journal=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        url = check_url(params["url"])
        timeout = check_echo_timeout(params["timeout"])
        http_timeout = check_http_timeout(params["http_timeout"])
        parallel = check_parallel(params["parallel"])
        if params["peers"] is None and params["registry"] is None:
            raise EchoInputError("give peers to echo, a registry to compare, or both")
        if params["password"] is not None and params["username"] is None:
            raise EchoInputError("password is set but username is not")
        registry = None if params["registry"] is None else check_registry(params["registry"])
        raw_peers = [{k: v for k, v in peer.items() if v is not None} for peer in params["peers"] or []]
        plain, modality_ids = split_peers(raw_peers)
        peers = []
        if plain:
            peers = validate_request({"peers": plain, "fail_on": params["fail_on"]}).peers
    except EchoInputError as exc:
        module.fail_json(msg="invalid input: %s" % exc)

    client = OrthancClient(url=url, username=params["username"], password=params["password"],
                           validate_certs=params["validate_certs"], ca_path=params["ca_path"],
                           use_proxy=params["use_proxy"], http_timeout=http_timeout)
    result = dict(changed=False)
    try:
        system = read_system(client)
        result["orthanc"] = system
        modalities = read_modalities(client)
        result["modalities"] = {mid: modality_summary(entry) for mid, entry in sorted(modalities.items())}
        calling_given = [peer.get("calling_ae_title") is not None for peer in raw_peers]
        plans = plan_echoes(peers, modality_ids, calling_given, modalities, system["ae_title"])
    except EchoInputError as exc:
        module.fail_json(msg="invalid input: %s" % exc, **result)
    except OrthancApiError as exc:
        module.fail_json(msg=str(exc), **result)

    messages = []
    failed = False
    if plans:
        started = time.monotonic()
        try:
            results = run_echoes(client, system, plans, timeout, parallel)
        except OrthancApiError as exc:
            module.fail_json(msg=str(exc), **result)
        result["results"] = results
        result["summary"] = summarize(results, (time.monotonic() - started) * 1000.0)
        messages.append(summary_message(results))
        failed = params["fail_on"] == "unexpected" and result["summary"]["failed"] > 0
    if registry is not None:
        drift = compare_registry(registry, modalities, system["ae_title"], params["registry_required"])
        result["drift"] = drift
        messages.append(drift_message(drift))
        failed = failed or (params["fail_on_drift"] and not drift["in_sync"])
    result["msg"] = "; ".join(messages)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
