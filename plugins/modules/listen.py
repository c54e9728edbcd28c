#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: listen
short_description: Stand in for a DICOM device that is not installed yet, and see who reaches it
version_added: 0.1.0
description:
  - Listens on the managed host as a DICOM Verification SCP with the AE title, address and port a new
    device will have, and answers C-ECHO as that device would, for at most O(duration) seconds or until
    every caller in O(expect_callers) has echoed and every caller in O(expect_rejected) has been turned away.
  - Accepts only the calling AE titles in O(allowed_calling_ae_titles) (and, with
    O(allowed_source_addresses), only from those addresses), and turns every other caller away with the
    A-ASSOCIATE-RJ of O(reject), as the device will once it is configured. A wrong called AE title is
    rejected with reason called-AE-title-not-recognized unless O(check_called_ae_title=false).
  - Returns every connection it saw, with the time, the calling and called AE titles, the source address
    and port the listener saw (which catches NAT and wrong routes), and what happened
    (RV(associations[].outcome)).
  - Meant to run as an async task (C(async) at least O(duration) + 30, C(poll) 0) while the callers echo
    it, then read with C(ansible.builtin.async_status). It stops on its own at O(duration), whatever
    happens to the controller, and frees the port.
  - Only Verification is offered. A caller that proposes other services (a C(storescu), a C-MOVE
    destination test) is accepted with every proposed context refused, and its record lists what it
    proposed.
author:
  - dicom.network contributors (@dicom-network)
requirements:
  - pynetdicom on the managed host (see M(dicom.network.echo)).
notes:
  - Ports below 1024 (104 is DICOM's) need root or C(CAP_NET_BIND_SERVICE) on the managed host
    (C(become) true).
  - To stand in at the device's future address, add that address to an interface of the managed host
    first, or listen on the real host's port before the device software is installed there.
  - The listener's associations announce implementation class UID
    C(2.25.282971362589422405731860904511017643008) and version name C(DICOMNET_0_1), as
    M(dicom.network.echo) does.
  - If the listener could not stop by itself (a hung thread), it is killed O(idle_timeout) + 30 seconds
    after O(duration); that task then fails without results.
  - Where C(HOME) is not the user's home of C(/etc/passwd) (some execution environments, CI jobs),
    ansible-core's async wrapper and C(ansible.builtin.async_status) expand C(~/.ansible_async) differently
    and the status says C(could not find job); give C(ansible_async_dir) an absolute path for both tasks
    (the playbook C(dicom.network.golive) does).
attributes:
  async:
    support: full
    description: The way to run it beside the callers (C(poll) 0, then C(ansible.builtin.async_status)).
  check_mode:
    support: full
    description: Checks the options and that the address and port can be bound, and starts no listener.
  diff_mode:
    support: none
    description: Nothing on the host changes.
seealso:
  - module: dicom.network.echo
  - name: DICOM PS3.8 A-ASSOCIATE-RJ reasons
    description: What O(reject) sends.
    link: https://dicom.nema.org/medical/dicom/current/output/chtml/part08/sect_9.3.4.html
options:
  ae_title:
    description:
      - The AE title the device will answer as (the called AE title its callers must use).
      - 1 to 16 characters, no backslash, no control characters.
    type: str
    required: true
  port:
    description: The TCP port the device will listen on.
    type: int
    required: true
  bind_address:
    description:
      - The IP address to listen on, which must be an address of the managed host. V(0.0.0.0) listens
        on every IPv4 address, V(::) on every IPv6 (and usually IPv4) address.
    type: str
    default: 0.0.0.0
  duration:
    description:
      - Listen at most this many seconds (above 0, at most 86400).
    type: float
    default: 300
  expect_callers:
    description:
      - Calling AE titles that must echo the device. The listener stops early, after a short grace for
        releases, once every one of them has echoed (and every caller of O(expect_rejected) has been
        turned away).
      - With O(fail_on=missing), the task fails when one of them never echoed.
    type: list
    elements: str
    default: []
  expect_rejected:
    description:
      - Calling AE titles that will call but must be turned away (they are not in
        O(allowed_calling_ae_titles), or come from elsewhere than O(allowed_source_addresses)). Listed
        here, they count for the early stop, and with O(fail_on=missing) the task fails when one of them
        was never turned away (it never called, or it was let in).
    type: list
    elements: str
    default: []
  allowed_calling_ae_titles:
    description:
      - The calling AE titles the device will be configured to accept; every other caller is rejected
        with O(reject). Leave out to accept any calling AE title, as many devices do.
    type: list
    elements: str
  allowed_source_addresses:
    description:
      - IP addresses or networks (V(10.1.2.0/24)) callers may come from; a caller from elsewhere is
        rejected with O(reject). Leave out to accept any source address.
    type: list
    elements: str
  check_called_ae_title:
    description:
      - Reject a caller that asks for another called AE title than O(ae_title) (rejected-permanent,
        service-user, called-AE-title-not-recognized), as most devices do.
    type: bool
    default: true
  reject:
    description:
      - The A-ASSOCIATE-RJ sent to a caller that O(allowed_calling_ae_titles) or
        O(allowed_source_addresses) turns away. Keys left out keep their defaults.
    type: dict
    suboptions:
      result:
        description: V(permanent) or V(transient).
        type: str
        default: permanent
      source:
        description: V(service-user), V(service-provider-acse) or V(service-provider-presentation).
        type: str
        default: service-user
      reason:
        description:
          - For V(service-user) one of V(no-reason-given), V(application-context-name-not-supported),
            V(calling-ae-title-not-recognized), V(called-ae-title-not-recognized); for
            V(service-provider-acse) V(no-reason-given) or V(protocol-version-not-supported); for
            V(service-provider-presentation) V(temporary-congestion) or V(local-limit-exceeded).
          - Left out, the source's usual one - V(calling-ae-title-not-recognized) for V(service-user),
            V(no-reason-given) for V(service-provider-acse), V(local-limit-exceeded) for
            V(service-provider-presentation).
        type: str
  stop_file:
    description:
      - An absolute path on the managed host (in an existing directory, not existing yet). The listener stops
        within a tenth of a second once it exists - what a playbook does when every caller has had its turn,
        instead of waiting out O(duration). Create it in a directory of C(ansible.builtin.tempfile).
      - The listener removes it once it has stopped and freed the port, so C(ansible.builtin.wait_for) with
        C(state=absent) on it waits for exactly that.
    type: path
  idle_timeout:
    description:
      - Seconds a caller may stay silent (before its A-ASSOCIATE-RQ, or within the association) before
        the listener closes its connection. A port scan or a silent client never holds the listener.
    type: float
    default: 10
  fail_on:
    description:
      - V(missing) fails the task when a caller of O(expect_callers) never echoed or one of
        O(expect_rejected) was never turned away; V(never) only reports
        (what a playbook that judges both sides itself wants).
    type: str
    choices: [missing, never]
    default: missing
"""

EXAMPLES = r"""
- name: Stand in for the new CT (NEWCT on port 104) on its future address, for up to 10 minutes
  dicom.network.listen:
    ae_title: NEWCT
    bind_address: 10.20.30.40
    port: 104
    duration: 600
    allowed_calling_ae_titles: [PACS, ROUTER]
    expect_callers: [PACS, ROUTER]
  become: true
  async: 630
  poll: 0
  register: newct_listener

- name: Echo the stand-in from the archive host (or let the PACS administrator echo it)
  dicom.network.echo:
    calling_ae_title: PACS
    host: 10.20.30.40
    called_ae_title: NEWCT
    port: 104
  delegate_to: pacs01

- name: Collect what the stand-in saw
  ansible.builtin.async_status:
    jid: "{{ newct_listener.ansible_job_id }}"
  register: newct_seen
  until: newct_seen.finished
  retries: 130
  delay: 5

- name: Show every caller and where it came from
  ansible.builtin.debug:
    msg: "{{ newct_seen.associations | map(attribute='message') }}"

- name: Accept only the archive's subnet, and turn others away as a device short of licences would
  dicom.network.listen:
    ae_title: NEWWS
    port: 11112
    duration: 120
    allowed_source_addresses: [10.1.0.0/16]
    reject:
      result: transient
      source: service-provider-presentation
      reason: local-limit-exceeded
    fail_on: never
"""

RETURN = r"""
msg:
  description: One line - how long it listened, the connections by outcome, and any expected caller that never echoed.
  returned: always
  type: str
  sample: "listened 12.4 s on 0.0.0.0 port 104 as NEWCT: 3 connection(s) (2 echoed, 1 rejected); every expected caller was seen"
listener:
  description: Where and how long the listener ran; null in check mode.
  returned: success
  type: dict
  contains:
    ae_title:
      description: The AE title it answered as.
      type: str
      returned: success
      sample: NEWCT
    bind_address:
      description: The address it listened on.
      type: str
      returned: success
      sample: 0.0.0.0
    port:
      description: The port it listened on.
      type: int
      returned: success
      sample: 104
    started_at:
      description: When it started listening (UTC).
      type: str
      returned: success
      sample: "2026-12-07T18:00:00.000Z"
    ended_at:
      description: When it stopped (UTC).
      type: str
      returned: success
      sample: "2026-12-07T18:00:12.400Z"
    listened_s:
      description: Seconds it listened.
      type: float
      returned: success
      sample: 12.4
    stopped_because:
      description: V(duration), V(every expected caller was seen), V(stop file) (O(stop_file) appeared), or V(stopped)
        (SIGTERM or SIGINT).
      type: str
      returned: success
      sample: every expected caller was seen
associations:
  description: Every TCP connection the listener accepted, in the order they came.
  returned: success
  type: list
  elements: dict
  contains:
    started_at:
      description: When the connection opened (UTC).
      type: str
      returned: always
      sample: "2026-12-07T18:00:03.120Z"
    ended_at:
      description: When it closed (UTC); null if it was still open when the listener stopped.
      type: str
      returned: always
      sample: "2026-12-07T18:00:03.140Z"
    duration_ms:
      description: How long the connection was open.
      type: float
      returned: always
      sample: 20.5
    source_address:
      description: The caller's address as the listener saw it (after any NAT on the way).
      type: str
      returned: always
      sample: 10.1.0.5
    source_port:
      description: The caller's TCP port.
      type: int
      returned: always
      sample: 50412
    calling_ae_title:
      description: The caller's AE title; null without an A-ASSOCIATE-RQ.
      type: str
      returned: always
      sample: PACS
    called_ae_title:
      description: The AE title the caller asked for; null without an A-ASSOCIATE-RQ.
      type: str
      returned: always
      sample: NEWCT
    caller_implementation_class_uid:
      description: The implementation class UID in the caller's A-ASSOCIATE-RQ.
      type: str
      returned: always
      sample: "1.2.276.0.7230010.3.0.3.6.7"
    caller_implementation_version_name:
      description: The implementation version name in the caller's A-ASSOCIATE-RQ, if it sent one.
      type: str
      returned: always
      sample: OFFIS_DCMTK_367
    proposed:
      description: The SOP classes (keyword, or UID) the caller proposed.
      type: list
      elements: str
      returned: always
      sample: [Verification]
    allowed:
      description: Whether the caller passed the AE title and address checks; null without an A-ASSOCIATE-RQ.
      type: bool
      returned: always
      sample: true
    outcome:
      description:
        - V(echoed) - accepted, and at least one C-ECHO answered with success.
        - V(associated) - accepted, but no C-ECHO (for example only other services were proposed).
        - V(rejected) - turned away with an A-ASSOCIATE-RJ (see RV(associations[].reject)).
        - V(aborted) - aborted or closed by the caller before any C-ECHO.
        - V(no_association) - a TCP connection without an A-ASSOCIATE-RQ (a port check, a silent client,
          bytes that are not DICOM).
      type: str
      returned: always
      sample: echoed
    echoes:
      description: C-ECHO requests answered.
      type: int
      returned: always
      sample: 1
    reject:
      description: The A-ASSOCIATE-RJ sent (result, source, reason, in the standard's words) and why; null otherwise.
      type: dict
      returned: always
      sample: {"result": "permanent", "source": "service-user", "reason": "calling-ae-title-not-recognized",
               "why": "calling AE title WS9 is not in allowed_calling_ae_titles"}
    ended:
      description:
        - How the connection ended - V(released), V(aborted or closed by the caller), V(idle) (no A-ASSOCIATE-RQ
          within O(idle_timeout)), V(connection closed), or "aborted by the listener (its time was up)".
      type: str
      returned: always
      sample: released
    message:
      description: One line saying all of the above.
      type: str
      returned: always
      sample: "10.1.0.5:50412 as PACS calling NEWCT: 1 C-ECHO answered with success; released"
callers:
  description:
    - One entry per calling AE title seen, with its associations, echoes and source addresses.
    - C(expected) is V(echo) for a caller of O(expect_callers), V(rejected) for one of O(expect_rejected), else null.
  returned: success
  type: list
  elements: dict
  sample: [{"ae_title": "PACS", "expected": "echo", "echoed": true, "rejected": false, "associations": 1,
            "echoes": 1, "source_addresses": ["10.1.0.5"]}]
missing_callers:
  description: The AE titles of O(expect_callers) that never echoed and of O(expect_rejected) that were never turned away.
  returned: success
  type: list
  elements: str
  sample: [ROUTER]
"""

import signal
import threading

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dicom.network.plugins.module_utils._pynetdicom_dep import ensure_pynetdicom
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import EchoInputError
from ansible_collections.dicom.network.plugins.module_utils.listen_scp import (
    bind_problem,
    check_bind,
    run_listener,
    validate_listen,
)

# Beyond duration + idle_timeout (the longest a caller can hold a closing association), the process is
# ended by SIGALRM's default action even if a thread hangs: the port is never held for longer.
HARD_STOP_MARGIN_S = 30


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ae_title=dict(type="str", required=True),
            port=dict(type="int", required=True),
            bind_address=dict(type="str", default="0.0.0.0"),
            duration=dict(type="float", default=300),
            expect_callers=dict(type="list", elements="str", default=[]),
            expect_rejected=dict(type="list", elements="str", default=[]),
            allowed_calling_ae_titles=dict(type="list", elements="str"),
            allowed_source_addresses=dict(type="list", elements="str"),
            check_called_ae_title=dict(type="bool", default=True),
            reject=dict(type="dict", options=dict(
                result=dict(type="str", default="permanent"),
                source=dict(type="str", default="service-user"),
                reason=dict(type="str"),
            )),
            idle_timeout=dict(type="float", default=10),
            stop_file=dict(type="path"),
            fail_on=dict(type="str", default="missing", choices=["missing", "never"]),
        ),
        supports_check_mode=True,
    )
    try:
        request = validate_listen(module.params)
    except EchoInputError as exc:
        module.fail_json(msg="invalid input: %s" % exc)
    ensure_pynetdicom(module)
    try:
        check_bind(request)
    except OSError as exc:
        module.fail_json(msg=bind_problem(exc, request))
    if module.check_mode:
        module.exit_json(changed=False, associations=[], callers=[], missing_callers=[], listener=None,
                         msg="check mode: would listen %g s on %s port %d as %s" % (
                             request.duration, request.bind_address, request.port, request.ae_title))

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    signal.setitimer(signal.ITIMER_REAL, request.duration + request.idle_timeout + HARD_STOP_MARGIN_S)
    try:
        result = run_listener(request, stop.is_set)
    except OSError as exc:
        module.fail_json(msg=bind_problem(exc, request))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if request.fail_on == "missing" and result["missing_callers"]:
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
