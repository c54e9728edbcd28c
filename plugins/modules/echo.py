#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: echo
short_description: Verify DICOM connectivity with C-ECHO from the managed host to one or many peers
version_added: 0.1.0
description:
  - Opens a DICOM association (A-ASSOCIATE) to every peer with the given calling and called AE titles,
    proposes the Verification SOP Class (1.2.840.10008.1.1), sends C-ECHO-RQ, checks that the
    C-ECHO-RSP status is 0x0000 and releases the association. Unlike a TCP or ICMP ping, this proves that
    the peer speaks DICOM and accepts this calling AE title from this source address.
  - All peers are echoed concurrently (O(parallel) associations at work at a time), so many peers take
    about as long as the slowest few. Peers that do not answer do not hold up the others (see O(parallel)).
  - Every outcome is classified precisely (see RV(results[].outcome)) and compared with the peer's
    O(peers[].expect); the task fails when an outcome differs from what was expected, unless
    O(fail_on=never).
  - Every timeout is enforced as a wall-clock deadline, also against peers that send data one byte at a
    time; the task never hangs.
  - Beyond the echo, O(services) checks that a route supports what it is needed for (for example that
    the archive accepts Enhanced CT Image Storage in JPEG 2000 from this modality) and O(discover) lists
    what a peer accepts, all in the echo's own association and without sending any data.
  - Read-only. The echo also runs in check mode, and the module never reports C(changed).
author:
  - dicom.network contributors (@dicom-network)
requirements:
  - pynetdicom on the managed host, in a tested minor version (as C(requirements.txt) pins them) -
    2.0.x with pydicom 2.4.x for Python 3.8 and 3.9, 3.0.x with pydicom 3.0.x for Python 3.10 and newer.
  - 'A pynetdicom whose transport the module cannot instrument fails the task before any traffic with
    C(unsupported pynetdicom X.Y ...; tested: 2.0, 3.0).'
notes:
  - The module runs on the managed host, so the TCP source address, the firewall path and the calling
    AE title are the ones the real device would use. Use C(delegate_to) with O(bind_address) to probe
    on behalf of a source that cannot run Python.
  - On a timeout the TCP connection is closed at once rather than waiting on the unresponsive peer.
  - Every A-ASSOCIATE-RQ announces implementation class UID C(2.25.282971362589422405731860904511017643008)
    and implementation version name C(DICOMNET_0_1), so that a PACS administrator can tell audit
    traffic apart in the archive's logs.
attributes:
  action:
    support: full
    description: An action plugin on the controller adds RV(echoed_from), writes O(journal), and explains a
      target Python too old to run the module.
  async:
    support: full
    description: Runs with C(async); O(journal) is not written for async tasks.
  check_mode:
    support: full
    description: The echo is read-only and runs in check mode as well.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Target operating systems on which the module can run.
options:
  calling_ae_title:
    description:
      - The calling AE title this host speaks as (1 to 16 ASCII characters, no backslash).
      - Each peer may override it with O(peers[].calling_ae_title).
    type: str
    default: ECHOSCU
  peers:
    description:
      - The peers to echo, each with its own expectation. Results come back in this order.
      - Mutually exclusive with the single-peer shorthand O(host), O(port) and O(called_ae_title).
    type: list
    elements: dict
    suboptions:
      ae_title:
        description:
          - The called AE title of the peer. Required.
          - This and the other peer keys are checked by the module itself, so that an error names the
            entry (index and name), for example "peers[3] (printer).port must be between 1 and 65535".
        type: str
      host:
        description: Host name, IPv4 or IPv6 address of the peer. Required.
        type: str
      port:
        description: TCP port of the peer's DICOM listener, an integer from 1 to 65535. Defaults to 104.
        type: raw
      name:
        description:
          - A label for the peer in results and messages. Must be unique within one call for each calling AE title
            (one peer may be listed once per O(peers[].calling_ae_title)).
          - Defaults to O(peers[].ae_title).
        type: str
      expect:
        description:
          - What the outcome must be, one of V(accept) (the default), V(reject) or V(blocked).
          - V(accept) is met only by RV(results[].outcome=success).
          - V(reject) is met when the peer was reached and refused this caller (V(rejected), V(aborted),
            V(context_rejected) or V(status_failure)). A network failure never meets it, because it
            proves nothing about the peer's AE configuration.
          - Nor does an A-ASSOCIATE-RJ whose source is the peer's service provider rather than its
            application (RV(results[].reject.source) not V(service-user)), such as temporary congestion or
            local limit exceeded, which a peer at its association limit sends to any caller.
          - V(aborted) includes a peer that accepts the TCP connection and closes or resets it before
            sending any DICOM PDU, because some servers refuse unknown callers that way. A proxy or load
            balancer whose backend is down does the same, and so may a port that expects DICOM over TLS
            when it gets plain DICOM; RV(results[].message) says so. Pair a
            V(reject) check with an V(accept) check of the same peer from an allowed caller, which such
            a dead backend fails.
          - V(blocked) is met when no TCP path exists (V(refused), V(unreachable), or a V(timeout) in the
            V(connect) phase). This is the firewall segmentation check.
        type: str
      calling_ae_title:
        description:
          - Calling AE title for this peer only, for example an unknown AE title in a security audit
            that checks the peer refuses strangers.
        type: str
      tls:
        description:
          - TLS settings for this peer only. Keys given here override the module-level O(tls) keys;
            keys left out are taken from O(tls).
          - Settings here while TLS stays off for this peer (no O(peers[].tls.enabled) here, and
            O(tls.enabled) false) are refused as a mistake. Add V(enabled=true), or V(enabled=false)
            to keep this peer plain.
        type: dict
        suboptions:
          enabled:
            description: Use TLS for this peer.
            type: bool
          ca_file:
            description: PEM file with the CA certificates that sign this peer's certificate.
            type: path
          cert_file:
            description: PEM client certificate for this peer.
            type: path
          key_file:
            description: PEM private key of O(peers[].tls.cert_file).
            type: path
          key_password:
            description: Password of an encrypted O(peers[].tls.key_file). Never logged or returned.
            type: str
          verify:
            description: Verify this peer's certificate chain and host name.
            type: bool
          server_hostname:
            description: Host name to check this peer's certificate against.
            type: str
      services:
        description:
          - The services this peer must provide, replacing the module-level O(services) for this peer. Same
            form as O(services); an empty list checks no services on this peer.
          - Only for a peer with O(peers[].expect=accept); a peer that must refuse or be blocked negotiates
            nothing, and services on it are refused as a mistake.
        type: list
        elements: raw
      discover:
        description:
          - Discovery for this peer, replacing the module-level O(discover). Same values.
          - Only for a peer with O(peers[].expect=accept).
        type: str
  services:
    description:
      - Services every peer must provide beyond Verification. Each is proposed as a presentation context of
        its own next to Verification, in the echo's association, and the peer's A-ASSOCIATE-AC says which it
        accepts and with which transfer syntax; no data is sent. See RV(results[].services).
      - Each entry is a SOP class, by pydicom keyword (V(CTImageStorage), V(EnhancedCTImageStorage),
        V(ModalityWorklistInformationFind), V(StudyRootQueryRetrieveInformationModelMove),
        V(StorageCommitmentPushModel)) or by UID (a private SOP class too); or a dictionary with
        C(sop_class) and C(transfer_syntaxes), a list of transfer syntaxes by keyword (V(JPEG2000Lossless),
        V(ExplicitVRLittleEndian)) or UID, proposed together in that context. Without C(transfer_syntaxes),
        implicit and explicit VR little endian are proposed, which every peer that supports the class accepts.
      - Every entry is required. When the echo succeeds but the peer refuses any of them, the outcome is
        V(service_rejected) and the message names each refused service and why; the peer is not as expected.
      - Every keyword and UID is checked on the managed host with pydicom before any traffic. An unknown
        keyword (the error suggests close matches), a malformed UID, a transfer syntax where a SOP class
        belongs or the other way round, Verification itself, or a SOP class listed twice fails the task.
      - Up to 127 services share the echo's association (DICOM allows 128 presentation contexts, one is
        Verification's). More are negotiated in further associations to the same address, one per 127,
        each under the same timeouts, without an echo; their results are merged into the peer's.
      - A peer's own O(peers[].services) replaces this list for that peer.
    type: list
    elements: raw
  discover:
    description:
      - Proposes every SOP class pydicom and pynetdicom know of a family, each in a context of its own with
        implicit and explicit VR little endian, and returns what the peer accepts and with which transfer
        syntax in RV(results[].services) (with C(required=false)). A measured conformance table of the peer,
        to compare with its conformance statement.
      - V(storage) (every storage SOP class, about 170, in two associations), V(query_retrieve) (the
        C-FIND/C-MOVE/C-GET information models), V(worklist) (Modality Worklist), V(all) (every service
        class pynetdicom lists, about 250, in two associations).
      - Discovered services never fail the echo; listed in O(services) as well, a SOP class is required.
      - A peer's own O(peers[].discover) replaces this for that peer.
    type: str
    choices: [storage, query_retrieve, worklist, all]
  host:
    description: Single-peer shorthand, the peer's host. Requires O(called_ae_title).
    type: str
  port:
    description: Single-peer shorthand, the peer's port; 104 when not given.
    type: int
  called_ae_title:
    description: Single-peer shorthand, the peer's called AE title. Requires O(host).
    type: str
  connect_timeout:
    description:
      - Seconds allowed for resolving the host name, again for the TCP connection, and again for the TLS
        handshake when TLS is enabled.
      - Each address of a host name with several addresses gets this time, see RV(results[].address).
    type: float
    default: 5
  acse_timeout:
    description:
      - Seconds allowed for the peer to answer the association request, and for it to answer the
        release request.
    type: float
    default: 10
  dimse_timeout:
    description: Seconds allowed for each C-ECHO response.
    type: float
    default: 10
  parallel:
    description:
      - Number of associations at work at the same time (1 to 256).
      - An association that has waited more than 0.5 s for a peer that has not answered anything yet
        (name lookup, TCP connect, TLS or A-ASSOCIATE) stops counting, and another peer is started in
        its place, so that a few silent peers cost about one timeout rather than one per O(parallel)
        of them. At most 4 x O(parallel) associations are ever open (at most 256, unless O(parallel) is
        higher; a name lookup that hangs holds no connection and does not count). The extra ones last only
        as long as the wait; once the waiting associations end, no more than O(parallel) work at once.
      - A peer that has answered the A-ASSOCIATE is slow, not silent. Its association counts until it
        ends, however long its C-ECHO or release takes, so a loaded server never gets more than
        O(parallel) associations at work from this host. A server that takes more than 0.5 s to
        answer the A-ASSOCIATE itself looks silent until it answers.
      - On a small controller or source host more is not faster; the engine is CPU-bound on a LAN
        (about 3 to 7 ms of CPU per association with pynetdicom, depending on the CPU), so 16 to 32 is a
        good range even for hundreds of peers. Raise it for peers far away (high round-trip times).
      - Many peers are few servers. When the configured peers share one server, that server sees up to
        O(parallel) associations at once from this host (more while some of them wait, see above), and as
        many from each host Ansible runs at the same time (C(--forks)). A server at its association limit
        rejects the rest (V(rejected-transient), V(local-limit-exceeded)); lower O(parallel) for servers
        with a low limit.
    type: int
    default: 16
  count:
    description:
      - Number of C-ECHO requests sent within each association (1 to 1000), for round-trip statistics
        in RV(results[].rtt_ms).
      - Each request gets O(dimse_timeout), so a slow peer may keep one association busy for up to
        O(count) times O(dimse_timeout) (plus O(connect_timeout) and twice O(acse_timeout)); keep O(count)
        small against a slow peer.
    type: int
    default: 1
  bind_address:
    description:
      - Local address to connect from, for hosts with several addresses, or to probe on behalf of
        another source with C(delegate_to). The address family of the peers follows it.
      - It is bound once before any peer is tried; an address that is not one of this host's fails the
        task with an error naming it, instead of every peer failing.
    type: str
  max_pdu:
    description:
      - Maximum PDU length this side accepts, announced in the association request (0 means unlimited).
      - Otherwise at least 4096 (DCMTK's minimum); peers abort an association that announces less.
    type: int
    default: 16382
  tls:
    description:
      - DICOM over TLS (PS3.15 Annex B) for all peers; see also O(peers[].tls).
      - The files are read on the managed host before any connection. A missing, unreadable or broken
        file, an encrypted key without O(tls.key_password) or with a wrong one, or a key that is not the
        certificate's own makes each peer that uses those settings a V(tls_error) result (no connection
        made, the message names the setting and the file); the other peers are echoed as usual.
    type: dict
    suboptions:
      enabled:
        description: Use TLS.
        type: bool
        default: false
      ca_file:
        description: PEM file with the CA certificates that sign the peers' certificates. Defaults to the system trust store.
        type: path
      cert_file:
        description: PEM client certificate, for peers that require one.
        type: path
      key_file:
        description: PEM private key of O(tls.cert_file), if not in the same file. Requires O(tls.cert_file).
        type: path
      key_password:
        description: Password of an encrypted O(tls.key_file). Never logged or returned.
        type: str
      verify:
        description:
          - Verify the peer's certificate chain and host name. Only switch this off to diagnose a
            certificate problem; an unverified connection proves nothing about who answered.
        type: bool
        default: true
      server_hostname:
        description: Host name to check the peer's certificate against, when it differs from the host connected to.
        type: str
  debug:
    description:
      - Return the association negotiation as log lines in RV(results[].debug), like C(echoscu -d)
        shows (proposed and accepted contexts, the peer's implementation class UID and version, max PDU).
    type: bool
    default: false
  fail_on:
    description:
      - V(unexpected) fails the task when any peer's outcome does not match its expectation.
      - V(never) always returns the results, for reports that decide later.
    type: str
    choices: [unexpected, never]
    default: unexpected
  retries:
    description:
      - How many times (0 to 5) to echo again a peer whose outcome was not as expected but may be different in
        a moment, so that a busy archive raises no false alarm - a V(timeout), or a V(rejected) by the peer's
        presentation service provider (V(local-limit-exceeded), V(temporary-congestion), its load and not its
        configuration).
      - Retries start after every peer has been echoed once, after O(retry_delay), and run concurrently like
        the first round. Each result says how many attempts it took (RV(results[].attempts)) and keeps the
        earlier ones (RV(results[].earlier_attempts)); one that met its expectation only on a retry says
        C(ok after retry) in its message, one that never did C(N attempts) and the earlier outcomes.
      - Each retry can take as long as the first round's slowest peer; keep it small where timeouts are long.
    type: int
    default: 0
  retry_delay:
    description: Seconds to wait before each round of O(retries) (0 to 600).
    type: float
    default: 2
  journal:
    description:
      - Absolute path of a file on the B(controller) where the action plugin also writes this call's
        result (and the loop item) as soon as it returns, atomically and with mode 0640. The directory must
        exist. The role C(dicom.network.echo_audit) uses it so that a play interrupted half way still
        reports every finished host; the file is never sent to the managed host.
      - A journal that cannot be written becomes a warning; the echo result is returned as usual.
    type: path
seealso:
  - name: DICOM PS3.7 Verification Service Class
    description: The C-ECHO service this module uses.
    link: https://dicom.nema.org/medical/dicom/current/output/chtml/part07/sect_9.1.5.html
  - name: DICOM PS3.8 A-ASSOCIATE-RJ reasons
    description: The codes behind RV(results[].reject).
    link: https://dicom.nema.org/medical/dicom/current/output/chtml/part08/sect_9.3.4.html
"""

EXAMPLES = r"""
- name: Verify that the archive answers this modality (single-peer shorthand)
  dicom.network.echo:
    calling_ae_title: CT_EAST_1
    host: pacs.example.org
    port: 104
    called_ae_title: PACS_ARCHIVE

- name: Verify several peers at once, including ones that must refuse us
  dicom.network.echo:
    calling_ae_title: CT_EAST_1
    peers:
      - {name: archive, ae_title: PACS_ARCHIVE, host: pacs.example.org, port: 104}
      - {name: printer, ae_title: DRYVIEW, host: printer.example.org, port: 5040}
      - name: archive-stranger
        ae_title: PACS_ARCHIVE
        host: pacs.example.org
        port: 104
        calling_ae_title: UNKNOWN_AE
        expect: reject
      - {name: lab-segment, ae_title: LAB_SCP, host: lab.example.org, port: 104, expect: blocked}
    connect_timeout: 3
    acse_timeout: 5
    dimse_timeout: 5

- name: Measure round trips with 20 echoes in one association, over TLS with a client certificate
  dicom.network.echo:
    calling_ae_title: WS_READING_2
    called_ae_title: PACS_TLS
    host: pacs.example.org
    port: 2762
    count: 20
    tls:
      enabled: true
      ca_file: /etc/pki/dicom/hospital-ca.pem
      cert_file: /etc/pki/dicom/ws2.pem
      key_file: /etc/pki/dicom/ws2.key
      key_password: "{{ vault_ws2_key_password }}"
  register: echo_tls

- name: Before go-live, check that the archive takes what the new CT sends, and the worklist answers it
  dicom.network.echo:
    calling_ae_title: CT_EAST_2
    peers:
      - name: archive
        ae_title: PACS_ARCHIVE
        host: pacs.example.org
        services:
          - CTImageStorage
          - sop_class: EnhancedCTImageStorage
            transfer_syntaxes: [JPEG2000Lossless, ExplicitVRLittleEndian]
          - StorageCommitmentPushModel
      - name: worklist
        ae_title: RIS_MWL
        host: ris.example.org
        services: [ModalityWorklistInformationFind]

- name: List the storage SOP classes an archive accepts from this AE (its measured conformance table)
  dicom.network.echo:
    calling_ae_title: CT_EAST_2
    host: pacs.example.org
    called_ae_title: PACS_ARCHIVE
    discover: storage
  register: conformance

- name: Show the accepted SOP classes and their transfer syntaxes
  ansible.builtin.debug:
    msg: "{{ conformance.results[0].services | selectattr('accepted') | map(attribute='sop_class') | list }}"

- name: Collect results without failing, with the negotiation log for troubleshooting
  dicom.network.echo:
    calling_ae_title: MR_WEST_1
    peers: "{{ my_peers }}"
    fail_on: never
    debug: true
  register: echo_all

- name: Show the peers that did not answer as expected
  ansible.builtin.debug:
    msg: "{{ echo_all.results | rejectattr('ok') | map(attribute='message') | list }}"
"""

RETURN = r"""
msg:
  description:
    - One line that names every peer whose outcome differs from its expectation, with its outcome, phase
      and expectation; when every peer answered as expected, a line that says so with their number.
    - A rejection by the peer's DICOM service provider (RV(results[].reject.source) other than
      V(service-user), for example a busy peer at its association limit) says so.
  returned: always
  type: str
  sample: "1 of 3 peer(s) not as expected: printer (refused during connect, expected accept)"
results:
  description: One entry per peer, in the order of O(peers).
  returned: success or when a peer's outcome was not as expected
  type: list
  elements: dict
  contains:
    name:
      description: The peer's label.
      type: str
      returned: always
      sample: archive
    ae_title:
      description: The called AE title.
      type: str
      returned: always
      sample: PACS_ARCHIVE
    host:
      description: The host as given.
      type: str
      returned: always
      sample: pacs.example.org
    port:
      description: The TCP port.
      type: int
      returned: always
      sample: 104
    address:
      description:
        - The IP address echoed, or null when the host did not resolve.
        - A host name with several addresses is tried in the resolver's order (its first eight), like
          C(echoscu) and C(socket.create_connection) do, moving on after a refused, unreachable or timed-out
          TCP connect. This is the first address that accepted the connection, or the last one tried; the
          message lists the ones tried before. So V(blocked) is met only when no address could be reached.
      type: str
      returned: always
      sample: 192.0.2.10
    source_address:
      description:
        - The local IP address the TCP connection came from, as the peer saw it (before NAT), or null
          when no connection was made. With C(delegate_to) this is an address of the probe host.
      type: str
      returned: always
      sample: 192.0.2.77
    calling_ae_title:
      description: The calling AE title used for this peer.
      type: str
      returned: always
      sample: CT_EAST_1
    expect:
      description: The expectation, V(accept), V(reject) or V(blocked).
      type: str
      returned: always
      sample: accept
    outcome:
      description:
        - V(success) C-ECHO-RSP with status 0x0000 (and every required service in O(services) accepted).
        - V(service_rejected) the echo succeeded, but the peer refused at least one required service of
          O(services); RV(results[].services) has the results and the message names the refused ones.
        - V(rejected) A-ASSOCIATE-RJ; see RV(results[].reject).
        - V(context_rejected) association accepted but not the Verification presentation context (the
          results of O(services) are still reported).
        - V(status_failure) C-ECHO-RSP with another status; see RV(results[].status).
        - V(aborted) A-ABORT, A-P-ABORT, or the peer closed the connection.
        - V(timeout) a deadline passed; RV(results[].phase) says which.
        - V(refused) TCP connection refused.
        - V(unreachable) no route, host or network unreachable.
        - V(dns_error) the host name did not resolve.
        - V(tls_error) the TLS handshake failed (certificate, host name, protocol), the peer ended the TLS
          session with an alert (under TLS 1.3 a refused or missing client certificate arrives this way,
          after the handshake; the message says so), or the TLS settings of this peer cannot be used on this
          host (O(tls.ca_file), O(tls.cert_file) or O(tls.key_file) missing, unreadable or not PEM, a
          missing or wrong O(tls.key_password), a key that is not the certificate's own); then no
          connection was made and only the peers using those settings fail.
        - V(protocol_error) the peer sent something that is not DICOM.
      type: str
      returned: always
      sample: success
    ok:
      description: Whether RV(results[].outcome) meets RV(results[].expect).
      type: bool
      returned: always
      sample: true
    phase:
      description: Where the outcome was decided, V(resolve), V(connect), V(tls), V(associate), V(echo) or V(release).
      type: str
      returned: always
      sample: release
    message:
      description: One human-readable line, as precise as C(echoscu).
      type: str
      returned: always
      sample: "A-ASSOCIATE-RJ (rejected-permanent, source service-user, reason called-ae-title-not-recognized)
        for calling AE 'CT_EAST_1' -> called AE 'PACS_ARCHIVE'"
    status:
      description: The C-ECHO-RSP status as an integer, or null when no response arrived.
      type: int
      returned: always
      sample: 0
    reject:
      description: The A-ASSOCIATE-RJ details in the standard's words, or null.
      type: dict
      returned: always
      sample: {"result": "permanent", "source": "service-user", "reason": "calling-ae-title-not-recognized"}
      contains:
        result:
          description: V(permanent) or V(transient) (V(unknown-N) for a code the standard does not define).
          type: str
        source:
          description:
            - V(service-user) (the peer's application decided), V(service-provider-acse) or
              V(service-provider-presentation) (the peer's DICOM service provider, for example at its
              association limit).
          type: str
        reason:
          description:
            - For example V(calling-ae-title-not-recognized), V(called-ae-title-not-recognized),
              V(no-reason-given), V(local-limit-exceeded) or V(temporary-congestion).
          type: str
    rtt_ms:
      description:
        - Round-trip time of the C-ECHO requests in milliseconds (min, avg, max over O(count)), or null.
        - Measured from the request to the decoded response inside pynetdicom, including about 1 ms of its
          internal queues; on a LAN DCMTK C(echoscu) measures 0.4-0.5 ms where this reports 1.2-1.8 ms.
          Compare values with each other, not with C(echoscu) or ICMP ping.
      type: dict
      returned: always
      sample: {"min": 0.8, "avg": 1.1, "max": 1.6}
    timings_ms:
      description: Milliseconds spent in each phase (connect, associate, echo, release, total); null for phases not reached.
      type: dict
      returned: always
      sample: {"connect": 0.4, "associate": 3.2, "echo": 1.1, "release": 1.9, "total": 7.0}
    peer:
      description: What the peer announced in its A-ASSOCIATE-AC, or null when it did not accept.
      type: dict
      returned: always
      sample: {"implementation_class_uid": "1.2.276.0.7230010.3.0.3.6.7", "implementation_version_name": "OFFIS_DCMTK_367", "max_pdu": 16384}
    transfer_syntax:
      description: The transfer syntax the peer accepted for the Verification context, or null.
      type: str
      returned: always
      sample: 1.2.840.10008.1.2
    services:
      description:
        - One entry per service of O(services) (required), then per SOP class of O(discover) (not required),
          in that order; an empty list when neither was asked for.
      type: list
      elements: dict
      returned: always
      sample: [{"sop_class": "EnhancedCTImageStorage", "uid": "1.2.840.10008.5.1.4.1.1.2.1", "required": true,
                "accepted": false, "transfer_syntax": null, "result": "abstract-syntax-not-supported"}]
      contains:
        sop_class:
          description: The SOP class by pydicom keyword, or its UID when pydicom has no keyword for it.
          type: str
        uid:
          description: The SOP class UID.
          type: str
        required:
          description: Whether it came from O(services) (true) or from O(discover) (false).
          type: bool
        accepted:
          description: Whether the peer accepted its presentation context.
          type: bool
        transfer_syntax:
          description: The transfer syntax UID the peer chose among those proposed, or null when not accepted.
          type: str
        result:
          description:
            - The presentation context result of the A-ASSOCIATE-AC in the standard's words, V(acceptance),
              V(user-rejection), V(no-reason), V(abstract-syntax-not-supported) or
              V(transfer-syntaxes-not-supported).
            - Null when it was never negotiated, because the association was not accepted (see
              RV(results[].outcome)).
          type: str
    tls:
      description: Whether TLS was used for this peer.
      type: bool
      returned: always
      sample: false
    tls_certificate:
      description:
        - The peer's leaf certificate, for a TLS peer that sent one; null for a plain peer, or when no
          handshake got that far.
        - When verification fails, the module reads the certificate with one more TLS handshake without
          verification (in the time left of O(connect_timeout)), so that an expired or unknown certificate
          still shows its dates and fingerprint; nothing is sent over that connection.
      type: dict
      returned: always
      sample: {"sha256": "3A:91:...:0F", "verified": true, "subject": "CN=pacs.example.org,O=Hospital",
               "issuer": "CN=Hospital CA", "not_after": "2027-03-01T12:00:00Z", "days_left": 83}
      contains:
        sha256:
          description: SHA-256 fingerprint of the certificate's DER bytes, as C(openssl x509 -fingerprint -sha256) writes it.
          type: str
        verified:
          description: Whether the certificate was verified in this echo (O(tls.verify) on, and it passed).
          type: bool
        subject:
          description: The subject as RFC 4514 writes it, or null when the dates could not be read.
          type: str
        issuer:
          description: The issuer as RFC 4514 writes it, or null when the dates could not be read.
          type: str
        not_after:
          description: The end of the validity period (ISO 8601, UTC), or null when it could not be read.
          type: str
        days_left:
          description: Whole days until RV(results[].tls_certificate.not_after), negative once expired.
          type: int
        note:
          description:
            - Why subject, issuer and dates are missing. An unverified certificate is read with the Python
              package C(cryptography) where the managed host has it (it is never required); without it, only
              the fingerprint is known.
          type: str
          returned: when the dates could not be read
    attempts:
      description: How many times this peer was echoed (more than 1 only with O(retries)).
      type: int
      returned: always
      sample: 1
    earlier_attempts:
      description: The attempts before the last one (see O(retries)), each with its outcome, phase, message and start time.
      type: list
      elements: dict
      returned: always
      sample: [{"outcome": "rejected", "phase": "associate", "started_at": "2026-11-25T14:03:12.345+00:00",
                "message": "A-ASSOCIATE-RJ (rejected-transient, source service-provider-presentation, reason local-limit-exceeded) ..."}]
    started_at:
      description: When the attempt started, ISO 8601 in UTC.
      type: str
      returned: always
      sample: "2026-11-25T14:03:12.345+00:00"
    debug:
      description: The association negotiation as log lines.
      type: list
      elements: str
      returned: when O(debug=true)
      sample: ["Requesting Association", "Association Accepted"]
echoed_from:
  description:
    - The inventory host the module really ran on, so reports can say where an echo came from. It is
      the task's host, or the C(delegate_to) host when the echo is run by a probe on behalf of a source
      that cannot run Python.
    - Also returned when that host is unreachable. Not in the final result of an C(async) task, which
      comes from C(async_status) on the target.
  returned: always, except in the result of an async job
  type: str
  sample: probe-mod-a.example.org
summary:
  description: Counts over all peers.
  returned: success or when a peer's outcome was not as expected
  type: dict
  contains:
    total:
      description: Number of peers.
      type: int
      sample: 3
    ok:
      description: Peers whose outcome met the expectation.
      type: int
      sample: 2
    failed:
      description: Peers whose outcome did not meet the expectation.
      type: int
      sample: 1
    by_outcome:
      description: Number of peers per outcome.
      type: dict
      sample: {"success": 2, "refused": 1}
    duration_ms:
      description: Wall time of all echoes in milliseconds.
      type: float
      sample: 48.2
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dicom.network.plugins.module_utils._pynetdicom_compat import UnsupportedPynetdicom
from ansible_collections.dicom.network.plugins.module_utils._pynetdicom_dep import ensure_pynetdicom
from ansible_collections.dicom.network.plugins.module_utils.echo_engine import run_echoes
from ansible_collections.dicom.network.plugins.module_utils.echo_retry import run_with_retries
from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import summarize, summary_message
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    PEER_ARGUMENT_OPTIONS, EchoInputError, validate_request)


def main():
    peer_tls_options = dict(
        enabled=dict(type="bool"),
        ca_file=dict(type="path"),
        cert_file=dict(type="path"),
        key_file=dict(type="path"),
        key_password=dict(type="str", no_log=True),
        verify=dict(type="bool"),
        server_hostname=dict(type="str"),
    )
    # Module-level TLS carries the defaults; a peer's TLS only overrides what it names.
    tls_options = dict(peer_tls_options, enabled=dict(type="bool", default=False),
                       verify=dict(type="bool", default=True))
    module = AnsibleModule(
        argument_spec=dict(
            calling_ae_title=dict(type="str", default="ECHOSCU"),
            peers=dict(
                type="list",
                elements="dict",
                options=dict(
                    PEER_ARGUMENT_OPTIONS,
                    tls=dict(type="dict", options=peer_tls_options),
                    services=dict(type="list", elements="raw"),
                    discover=dict(type="str"),
                ),
            ),
            services=dict(type="list", elements="raw"),
            discover=dict(type="str", choices=["storage", "query_retrieve", "worklist", "all"]),
            host=dict(type="str"),
            port=dict(type="int"),
            called_ae_title=dict(type="str"),
            connect_timeout=dict(type="float", default=5),
            acse_timeout=dict(type="float", default=10),
            dimse_timeout=dict(type="float", default=10),
            parallel=dict(type="int", default=16),
            count=dict(type="int", default=1),
            bind_address=dict(type="str"),
            max_pdu=dict(type="int", default=16382),
            tls=dict(type="dict", options=tls_options),
            debug=dict(type="bool", default=False),
            fail_on=dict(type="str", default="unexpected", choices=["unexpected", "never"]),
            retries=dict(type="int", default=0),
            retry_delay=dict(type="float", default=2),
            # Consumed by the action plugin on the controller; listed so the documentation matches.
            journal=dict(type="path"),
        ),
        mutually_exclusive=[("peers", "host"), ("peers", "port"), ("peers", "called_ae_title")],
        required_one_of=[("peers", "host")],
        required_together=[("host", "called_ae_title")],
        supports_check_mode=True,
    )
    params = dict(module.params)
    if params["peers"] is not None:
        for peer in params["peers"]:
            if peer.get("tls") is not None:
                peer["tls"] = {k: v for k, v in peer["tls"].items() if v is not None}
    try:
        request = validate_request(params)
    except EchoInputError as exc:
        module.fail_json(msg="invalid input: %s" % exc)

    ensure_pynetdicom(module)

    started = time.monotonic()
    try:
        results = run_with_retries(request, run_echoes)
    except EchoInputError as exc:
        module.fail_json(msg="invalid input: %s" % exc)
    except UnsupportedPynetdicom as exc:
        module.fail_json(msg=str(exc))
    summary = summarize(results, (time.monotonic() - started) * 1000.0)
    msg = summary_message(results)
    if request.fail_on == "unexpected" and summary["failed"]:
        module.fail_json(msg=msg, results=results, summary=summary, changed=False)
    module.exit_json(msg=msg, results=results, summary=summary, changed=False)


if __name__ == "__main__":
    main()
