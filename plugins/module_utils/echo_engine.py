# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Concurrent C-ECHO engine on top of pynetdicom's association API.

pynetdicom does the protocol. This module adds what an audit needs around it: one thread per
association under two limits, a watchdog that enforces every timeout as a wall-clock deadline
(pynetdicom's own do not bound a peer that drips bytes), and transport hooks that attribute each
failure to its phase and cause. pynetdicom internals only through _pynetdicom_compat.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ansible_collections.dicom.network.plugins.module_utils import _pynetdicom_compat as compat
from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import (
    Classification, Observation, classify_connect_error, expectation_met, rtt_statistics)
from ansible_collections.dicom.network.plugins.module_utils.echo_services import (
    ServicePlan, context_answers, negotiate_remaining, pdu_text, plan_peers, verdict_with_services)
from ansible_collections.dicom.network.plugins.module_utils.echo_tls import (
    TlsSetupError, handshake, session_line, ssl_contexts, tls_record_hint)
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    EchoRequest, PeerSpec, bind_family, check_bind_address)

try:
    from pydicom import config as pydicom_config
    from pynetdicom import evt
    from pynetdicom.sop_class import Verification
except ImportError:  # reported to the user by _pynetdicom_dep.ensure_pynetdicom()
    evt = None

# What our A-ASSOCIATE-RQ announces, so that an archive's log tells audit traffic apart
# (a UUID-derived UID, PS3.5 B.2, of the name the collection is published under).
IMPLEMENTATION_CLASS_UID = "2.25.282971362589422405731860904511017643008"
IMPLEMENTATION_VERSION_NAME = "DICOMNET_0_1"
# pynetdicom's own timers are set this much later than our deadlines, so that the watchdog,
# which knows the phase, is the one that decides a timeout.
_PYNETDICOM_TIMEOUT_SLACK_S = 2.0
# Our watchdog's backstop for phases already bounded by a socket timeout (TCP connect).
_BACKSTOP_SLACK_S = 0.5
_WATCHDOG_TICK_S = 0.02
# A peer silent this long (lookup, TCP, TLS, A-ASSOCIATE) stops counting against `parallel`: silent
# peers cost about one timeout in all, not one per `parallel` of them...
_STALLED_AFTER_S = 0.5
# ...while at most this many times `parallel` connections are open (nor over _MAX_OPEN, unless `parallel` is).
_STALL_HEADROOM = 4
_MAX_OPEN = 256
# An association-phase PDU larger than this cannot be a real answer to our echo; refusing to
# read it avoids buffering whatever a hostile peer claims to send.
_MAX_SANE_PDU_LENGTH = 16 * 1024 * 1024
_PDU_NAMES = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF",
              5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}
# A name with more addresses is tried on its first eight: each may take connect_timeout.
_MAX_ADDRESSES = 8


class _AlreadyReported(OSError):
    """A step of a peer whose result has been reported already (see _PeerRun.enter)."""


class _PeerRun:
    """One peer's echo: its state, shared by its thread, pynetdicom's threads and the watchdog, and
    the transport hooks (``connect``, ``connect_failed``, ``received``) of _pynetdicom_compat."""

    def __init__(self, spec: PeerSpec, request: EchoRequest, tls: Union[ssl.SSLContext, TlsSetupError, None],
                 plan: ServicePlan):
        """``tls``: the peer's SSL context, None without TLS, or why this host's TLS files cannot be used."""
        self.spec, self.request, self.plan = spec, request, plan
        self.ssl_context = None if isinstance(tls, TlsSetupError) else tls
        self.obs = Observation.of_peer(spec, request.count)
        self.obs.tls_setup_error = tls.for_settings(spec.tls) if isinstance(tls, TlsSetupError) else None
        # The peer's answer to each SOP class of the plan (result code, transfer syntax), and the failure
        # of an association after the echo's, when the services needed more than one.
        self.answers: Dict[str, Tuple[Optional[int], Optional[str]]] = {}
        self.later_failure: Optional[Classification] = None
        self.lock, self.done = threading.Lock(), threading.Event()
        self.phase, self.phase_timeout = "resolve", request.connect_timeout
        self.phase_since: Optional[float] = None
        self.deadline: Optional[float] = None
        self.raw_socket: Optional[socket.socket] = None
        self.address: Optional[str] = None
        self.addresses: List[str] = []  # what the name resolved to, in order (at most _MAX_ADDRESSES)
        self.source_address: Optional[str] = None  # the local end: the source address the peer saw
        self.started_at: Optional[str] = None  # wall clock, for the result
        self.started = 0.0  # monotonic
        self.timings: Dict[str, Optional[float]] = {
            "connect": None, "associate": None, "echo": None, "release": None, "total": None}
        self.rtts: List[float] = []
        self.debug_lines: List[str] = []
        self.peer_info: Optional[Dict[str, Any]] = None
        self.transfer_syntax: Optional[str] = None
        self.tls_certificate: Optional[Dict[str, Any]] = None
        self.release_complete = False
        self.expected_msg_id: Optional[int] = None
        self.pdu_in_body: Optional[Tuple[int, int]] = None  # (type, length) of the PDU being read

    def enter(self, phase: str, timeout: float, slack: float = 0.0) -> None:
        """Start the next step; OSError when this run has been reported already (its name lookup
        returned just as its deadline passed), so that a reported peer gets no traffic."""
        now = time.monotonic()
        with self.lock:
            if self.done.is_set():
                raise _AlreadyReported("the peer has been reported already; no %s step" % phase)
            self.phase, self.phase_timeout, self.phase_since = phase, timeout, now
            self.deadline = now + timeout + slack

    def stalled(self, now: float) -> bool:
        """Waiting over _STALLED_AFTER_S for a peer that has not answered anything yet. A peer that
        has answered is slow, not silent: replacing it would give a loaded server more than `parallel`."""
        since = self.phase_since
        return (since is not None and now - since > _STALLED_AFTER_S and not self.done.is_set()
                and not self.obs.pdus_received)

    def expire_if_due(self, now: float) -> None:
        with self.lock:
            if self.done.is_set() or self.deadline is None or now < self.deadline:
                return
            self._mark_timed_out()
            self.deadline = None
            raw = self.raw_socket
            if self.phase == "resolve":
                # getaddrinfo() cannot be interrupted: report now and let the thread finish unseen.
                self.finish()
                return
        if raw is not None:
            # Closing the transport wakes pynetdicom's reader at once (Evt17), which ends the
            # association; asking pynetdicom to abort would wait on the unresponsive peer. The plain
            # socket's shutdown also for a TLS socket: its own would drop the TLS state under the reader.
            try:
                socket.socket.shutdown(raw, socket.SHUT_RDWR)
            except OSError:
                pass

    def abandon(self) -> None:
        """Give up on a thread stuck where no deadline reaches (past the hard limit)."""
        with self.lock:
            self._mark_timed_out()
            self.finish()

    def _mark_timed_out(self) -> None:
        if self.obs.timed_out_phase is None:
            self.obs.timed_out_phase = self.phase
            self.obs.timeout_s = self.phase_timeout

    def finish(self) -> None:
        """Report this run as it stands (under the lock); later steps find it done."""
        self.deadline = None
        if not self.done.is_set():
            self.timings["total"] = _ms_since(self.started) if self.started else 0.0
            self.done.set()

    def debug(self, line: str) -> None:
        if self.request.debug:
            self.debug_lines.append(line)

    def connect(self, raw: socket.socket, address: tuple, tls_args) -> socket.socket:
        """TCP connect, then the TLS handshake, each a phase of its own; returns the socket to use."""
        self.raw_socket = raw
        self.enter("connect", self.request.connect_timeout, _BACKSTOP_SLACK_S)
        raw.settimeout(self.request.connect_timeout)
        started = time.monotonic()
        self.debug("Connecting to %s:%s" % address[:2])
        raw.connect(address)
        self.timings["connect"] = _ms_since(started)
        sock = raw
        if tls_args:
            self.enter("tls", self.request.connect_timeout, _BACKSTOP_SLACK_S)
            try:
                sock, self.tls_certificate = handshake(raw, tls_args, address, lambda: (
                    self.deadline or 0.0) - _BACKSTOP_SLACK_S - time.monotonic(), self.request.bind_address)
            except ssl.SSLCertVerificationError as exc:
                self.tls_certificate = getattr(exc, "certificate_facts", None)
                raise
            # wrap_socket() moves the descriptor to the TLS socket: a timeout must shut that one down.
            self.raw_socket = sock
            self.debug(session_line(sock))
        sock.settimeout(None)
        self.source_address = str(sock.getsockname()[0])
        self.enter("associate", self.request.acse_timeout)
        return sock

    def connect_failed(self, exc: BaseException) -> None:
        if not isinstance(exc, _AlreadyReported):  # the report stands as it was made
            self.obs.connect_error = exc
            self.obs.connect_error_phase = self.phase if self.phase in ("connect", "tls") else "connect"
            self.obs.timeout_s = self.request.connect_timeout

    def received(self, data: bytearray, nr_bytes: int) -> bytearray:
        """Look at every PDU header pynetdicom reads (6 bytes, then the body it announces): a peer
        that is not DICOM, or announces gigabytes, is caught here instead of being read."""
        if self.pdu_in_body is None and nr_bytes == 6:
            if len(data) == 6:
                pdu_type, _reserved, length = struct.unpack(">BBL", bytes(data))
                if pdu_type not in _PDU_NAMES:
                    self._protocol_violation("unknown PDU type 0x%02X, first bytes %s%s" % (
                        pdu_type, _printable(data), tls_record_hint(pdu_type, self.obs.tls_verified is not None)))
                elif length > _MAX_SANE_PDU_LENGTH:
                    self._protocol_violation("%s announces %d bytes, more than any answer to an echo"
                                             % (_PDU_NAMES[pdu_type], length))
                self.pdu_in_body = (pdu_type, length) if length > 0 else None
            elif data and self.obs.timed_out_phase is None:
                self._protocol_violation("connection closed after %d byte(s) %s of a PDU header"
                                         % (len(data), _printable(data)))
        else:
            pdu_type, length = self.pdu_in_body or (0, nr_bytes)
            self.pdu_in_body = None
            if len(data) < nr_bytes and self.obs.timed_out_phase is None:
                self._protocol_violation("connection closed after %d of the %d bytes the %s announced"
                                         % (len(data), length, _PDU_NAMES.get(pdu_type, "PDU")))
        return data

    def tls_failed(self, exc: ssl.SSLError) -> None:
        # TLS 1.3 servers check the client certificate after the handshake: their refusal arrives
        # as an alert on the first read, which pynetdicom would take for a close.
        if not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) and self.obs.tls_alert is None:
            self.obs.tls_alert = exc.reason or str(exc)
            self.obs.tls_alert_phase = self.phase

    def _protocol_violation(self, reason: str) -> None:
        self.violation(reason)
        # Raising makes pynetdicom treat the transport as closed (Evt17) instead of reading on.
        raise OSError("protocol violation: %s" % reason)

    def violation(self, reason: str, phase: Optional[str] = None) -> None:
        if self.obs.protocol_violation is None:
            self.obs.protocol_violation = reason
            self.obs.protocol_violation_phase = phase or self.phase


def _printable(data: Any) -> str:
    raw = bytes(data[:16])
    text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in raw)
    return "%s (%r)" % (raw.hex(), text)


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000.0, 3)


def _on_pdu_recv(event, run: _PeerRun) -> None:
    run.obs.pdus_received += 1
    pdu = event.pdu
    kind = type(pdu).__name__
    if kind == "A_ASSOCIATE_RJ":
        run.obs.reject = {"result": int(pdu.result or 0), "source": int(pdu.source or 0),
                          "diagnostic": int(pdu.reason_diagnostic or 0)}
    elif kind == "A_ASSOCIATE_AC":
        run.obs.accepted = True
        info = pdu.user_information
        run.peer_info = {key: pdu_text(getattr(info, key, None)) for key in (
            "implementation_class_uid", "implementation_version_name")}
        run.peer_info["max_pdu"] = getattr(info, "maximum_length", None)
        answers, unproposed = context_answers(pdu, event.assoc.requestor.requested_contexts)
        for context_id in unproposed:
            run.violation("A-ASSOCIATE-AC answers presentation context ID %s, which was not proposed" % context_id)
        if Verification in answers:
            run.obs.context_result, run.transfer_syntax = answers.pop(Verification)
        run.answers.update(answers)
    elif kind == "A_ABORT_RQ":
        run.obs.peer_abort = {"source": pdu.source, "reason": pdu.reason_diagnostic, "phase": run.phase}
        run.debug("Received A-ABORT: source %s, reason %s" % (pdu.source, pdu.reason_diagnostic))
        _wake_echo(event, run)
    elif kind == "A_RELEASE_RP":
        run.release_complete = True
    elif kind == "A_RELEASE_RQ" and run.phase != "release":
        run.violation("peer sent A-RELEASE-RQ during %s" % run.phase)
        _wake_echo(event, run)


def _on_fsm_transition(event, run: _PeerRun) -> None:
    fsm_event = getattr(event, "fsm_event", None)
    if fsm_event == "Evt19":
        run.violation("a PDU that could not be decoded")
    elif getattr(event, "action", None) == "AA-8":
        run.violation("a PDU not allowed in state %s (%s)" % (getattr(event, "current_state", "?"), fsm_event))
    elif fsm_event == "Evt17" and getattr(event, "current_state", None) != "Sta13" \
            and run.obs.timed_out_phase is None and not run.release_complete \
            and run.obs.peer_closed_phase is None and run.obs.connect_error is None:
        run.obs.peer_closed_phase = run.phase
        _wake_echo(event, run)


def _wake_echo(event, run: _PeerRun) -> None:
    """No C-ECHO-RSP can follow: wake send_c_echo() (pynetdicom's reactor is paused while it waits,
    so nothing else would) instead of letting it wait out the DIMSE timeout."""
    if run.phase == "echo":
        event.assoc.dimse.msg_queue.put((None, None))


def _on_dimse_recv(event, run: _PeerRun) -> None:
    command = event.message.command_set
    field = command.get("CommandField")
    if field != 0x8030:
        run.violation("answered the C-ECHO-RQ with command field 0x%04X, not a C-ECHO-RSP" % (field or 0), "echo")
    elif command.get("MessageIDBeingRespondedTo") != run.expected_msg_id:
        run.violation("C-ECHO-RSP answers message ID %s, expected %s" % (
            command.get("MessageIDBeingRespondedTo"), run.expected_msg_id), "echo")
    elif "AffectedSOPClassUID" in command and command.AffectedSOPClassUID != Verification:
        run.violation("C-ECHO-RSP names SOP class %s, not Verification" % command.AffectedSOPClassUID, "echo")


def _resolve(run: _PeerRun) -> bool:
    """Look the peer's name up; False when it failed or the run was reported meanwhile (a lookup that
    returned after its deadline: the report stands as the watchdog made it, so nothing is written)."""
    spec = run.spec
    bind_address = run.request.bind_address
    family, version = bind_family(bind_address) if bind_address else (0, 0)
    dns_error = None
    addresses: List[str] = []
    try:
        infos = socket.getaddrinfo(spec.host, spec.port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        dns_error = exc.strerror or str(exc)
        if bind_address:
            dns_error += " (only IPv%d addresses were looked up: bind_address %s is IPv%d)" % (
                version, bind_address, version)
    except (UnicodeError, ValueError) as exc:
        dns_error = str(exc)
    else:
        for info in infos:
            address = str(info[4][0])
            if address not in addresses and len(addresses) < _MAX_ADDRESSES:
                addresses.append(address)
    with run.lock:
        if run.done.is_set():
            return False
        if dns_error is not None:
            run.obs.dns_error = dns_error
            return False
        run.addresses = addresses
        run.address = addresses[0]
    return True


def _may_try_next_address(run: _PeerRun, index: int) -> bool:
    """Whether the TCP connect to this address failed in a way another address of the name may not.

    Like socket.create_connection() and echoscu, the next address is tried after a refused, unreachable
    or timed-out connect; a peer that accepted TCP and then reset or refused us has answered.
    """
    obs = run.obs
    return (index + 1 < len(run.addresses) and obs.connect_error is not None
            and obs.connect_error_phase == "connect" and not isinstance(obs.connect_error, ConnectionResetError)
            and obs.timed_out_phase is None and not run.done.is_set())


def _forget_failed_connect(run: _PeerRun) -> None:
    obs = run.obs
    obs.addresses_tried.append("%s (%s)" % (run.address, classify_connect_error(obs.connect_error, "connect")))
    obs.connect_error = None
    obs.connect_error_phase = "connect"
    obs.timeout_s = None
    run.timings["connect"] = None
    run.raw_socket = None
    run.source_address = None


def _associate_and_echo(run: _PeerRun, contexts: list, echo: bool = True) -> None:
    """One association: the echo's (``echo``), or one that only negotiates ``contexts`` and releases."""
    spec, request = run.spec, run.request
    ae = compat.HookedAE(run, ae_title=spec.calling_ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.connection_timeout = request.connect_timeout
    ae.acse_timeout = request.acse_timeout + _PYNETDICOM_TIMEOUT_SLACK_S
    ae.dimse_timeout = request.dimse_timeout + _PYNETDICOM_TIMEOUT_SLACK_S
    ae.network_timeout = max(request.acse_timeout, request.dimse_timeout) + _PYNETDICOM_TIMEOUT_SLACK_S
    handlers = [(evt.EVT_PDU_RECV, _on_pdu_recv, [run]), (evt.EVT_FSM_TRANSITION, _on_fsm_transition, [run]),
                (evt.EVT_DIMSE_RECV, _on_dimse_recv, [run])]
    kwargs: Dict[str, Any] = {"contexts": contexts, "ae_title": spec.ae_title, "max_pdu": request.max_pdu,
                              "evt_handlers": handlers}
    # pynetdicom's default bind address "" costs a getaddrinfo(AI_PASSIVE) per association (a netlink
    # query, a UDP connect: ~8 syscalls); the IPv4 wildcard it resolves to, given as is, costs none.
    if request.bind_address or ":" not in str(run.address):
        kwargs["bind_address"] = (request.bind_address or "0.0.0.0", 0)
    if run.ssl_context is not None:
        kwargs["tls_args"] = (run.ssl_context, spec.tls.server_hostname or spec.host)
    associate_started = time.monotonic()
    assoc = ae.associate(run.address, spec.port, **kwargs)
    try:
        if run.timings["connect"] is not None:
            run.timings["associate"] = round(_ms_since(associate_started) - run.timings["connect"], 3)
        if not assoc.is_established:
            return
        compat.guard_reactor(assoc)
        echo_started = time.monotonic()
        # With other contexts accepted, the association stands without Verification: nothing to echo on.
        for message_id in range(1, request.count + 1 if echo and run.obs.context_result == 0 else 1):
            if message_id > 1 and (run.obs.protocol_violation is not None or run.obs.peer_abort is not None
                                   or run.obs.peer_closed_phase is not None or not assoc.is_established):
                # The peer ended, or asked to end, the association after the last answer: the wake-up
                # for the next send_c_echo() may already be spent, so it is not sent at all.
                break
            run.enter("echo", request.dimse_timeout)
            sent = time.monotonic()
            run.expected_msg_id = message_id
            status = assoc.send_c_echo(msg_id=message_id)
            if run.obs.protocol_violation is not None:
                break
            if status is None or "Status" not in status:
                run.obs.echo_failed_without_status = True
                break
            run.rtts.append(_ms_since(sent))
            run.obs.statuses.append(int(status.Status))
            if int(status.Status) != 0x0000 or not assoc.is_established:
                break
        if echo:
            run.timings["echo"] = _ms_since(echo_started)
        if assoc.is_established:
            release_started = time.monotonic()
            run.enter("release", request.acse_timeout)
            assoc.release()
            run.timings["release"] = _ms_since(release_started)
            if not run.release_complete:
                run.obs.release_problem = (
                    "peer did not answer A-RELEASE-RQ within %g s; association aborted" % request.acse_timeout
                    if run.obs.timed_out_phase == "release" else "association ended without A-RELEASE-RP")
    finally:
        if not (assoc.is_released or assoc.is_aborted or assoc.is_rejected):
            assoc.abort()
        compat.end_association(assoc)


def _echo_one(run: _PeerRun) -> None:
    threading.current_thread()._dn_run = run  # type: ignore[attr-defined]  # for compat.pynetdicom_logging
    run.started = time.monotonic()
    run.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    run.debug("dicom.network echo on pynetdicom %s" % compat.VERSION)
    if run.obs.tls_setup_error is not None:
        return
    run.enter("resolve", run.request.connect_timeout)
    if not _resolve(run) or run.done.is_set():
        return
    for index, address in enumerate(run.addresses):
        run.address = address
        _associate_and_echo(run, run.plan.contexts[0])
        if not _may_try_next_address(run, index):
            break
        run.debug("TCP connect to %s failed (%s); trying the next address of %s"
                  % (address, run.obs.connect_error, run.spec.host))
        _forget_failed_connect(run)
    run.later_failure = negotiate_remaining(run, _associate_and_echo)


def _association_thread(run: _PeerRun, wake: threading.Event) -> None:
    try:
        _echo_one(run)
    except Exception as exc:  # noqa: BLE001 - one peer's surprise must not cost the others
        if run.obs.connect_error is None and not run.done.is_set():
            run.violation("unexpected error while talking to the peer: %s: %s" % (type(exc).__name__, exc))
    finally:
        with run.lock:
            run.finish()
        wake.set()


def open_limit(parallel: int) -> int:
    """The most connections a run with this `parallel` ever has open, stalled ones included."""
    return min(parallel * _STALL_HEADROOM, max(parallel, _MAX_OPEN))


def _hard_limit(request: EchoRequest, run: _PeerRun) -> float:
    """The longest one peer may take, even if its thread is stuck where no socket can be closed."""
    more = len(run.plan.parts) - 1  # each another connect, A-ASSOCIATE and A-RELEASE
    return ((1 + max(len(run.addresses), 1) + more) * request.connect_timeout + 2 * (1 + more) * request.acse_timeout
            + request.count * request.dimse_timeout + (3 + more) * _PYNETDICOM_TIMEOUT_SLACK_S)


class _Scheduler:
    """Starts one thread per peer, in input order, and is the watchdog of those in flight. Limits:
    `parallel` at work (a peer silent for _STALLED_AFTER_S no longer counts) and open_limit()
    connections open (a hung name lookup holds none). ``start(run)`` returns False when no thread
    can be had now (tried again next tick); ``clock`` is a fake one in the unit tests."""

    def __init__(self, runs: List[_PeerRun], parallel: int, start: Callable[[_PeerRun], bool],
                 clock: Callable[[], float] = time.monotonic):
        self.pending = deque(runs)
        self.active: List[_PeerRun] = []
        self.started_at: Dict[int, float] = {}
        self.parallel, self.limit = parallel, open_limit(parallel)
        self.start, self.clock = start, clock

    def tick(self) -> bool:
        """Enforce the deadlines, start what the limits allow; False once every run is done."""
        now = self.clock()
        for run in self.active:
            run.expire_if_due(now)
            if now - self.started_at[id(run)] > _hard_limit(run.request, run):
                run.abandon()
        self.active = [run for run in self.active if not run.done.is_set()]
        # Starting a thread waits until it runs, long when hundreds compete for the GIL: past one
        # tick, the rest start on the next one, right away, and the deadlines are enforced between.
        self.behind = False
        while self.pending and self._room(now):
            if self.clock() - now > _WATCHDOG_TICK_S:
                self.behind = True
                break
            run = self.pending[0]
            if not self.start(run):
                if not self.active:
                    raise RuntimeError("cannot start a thread for peer %s, and none is running" % run.spec.name)
                self.behind = False  # wait a tick before trying again
                break
            self.started_at[id(run)] = now
            self.active.append(run)
            self.pending.popleft()
        return bool(self.pending or self.active)

    def _room(self, now: float) -> bool:
        working = opened = 0
        for run in self.active:
            stalled = run.stalled(now)
            working += not stalled
            opened += not (stalled and run.phase == "resolve")
        return working < self.parallel and opened < self.limit


def _start_thread(run: _PeerRun, wake: threading.Event, number: List[int]) -> bool:
    number[0] += 1
    try:
        threading.Thread(target=_association_thread, args=(run, wake), daemon=True,
                         name="dicom-echo-%d" % number[0]).start()
    except RuntimeError:  # no thread to be had now (a pids limit)
        return False
    return True


def run_echoes(request: EchoRequest) -> List[Dict[str, Any]]:
    """Echo every peer of ``request`` concurrently and return one result per peer, in input order."""
    compat.check_supported()
    check_bind_address(request.bind_address)
    plans = plan_peers(request.peers)
    contexts = ssl_contexts(spec.tls for spec in request.peers)
    runs = [_PeerRun(spec, request, contexts[spec.tls], plans[spec.index]) for spec in request.peers]
    restore_logging = compat.pynetdicom_logging(request.debug)
    wake = threading.Event()  # set as each run ends, so that the next starts at once
    number = [0]
    scheduler = _Scheduler(runs, request.parallel, lambda run: _start_thread(run, wake, number))
    try:
        # pydicom checks every UID and value pynetdicom builds or decodes (~55 regex matches per
        # association), and only warns: off, 4-6% less CPU for scenario 1's 500 peers (12 A/B runs).
        # pynetdicom's own UID and AE title checks stay. pydicom documents this switch for speed.
        with pydicom_config.disable_value_validation():
            while True:
                wake.clear()
                if not scheduler.tick():
                    break
                if not scheduler.behind:
                    wake.wait(_WATCHDOG_TICK_S)
    finally:
        # Ending early (an interrupt, an error) starts no more peers; those in flight end by themselves.
        restore_logging()
    return [_result(run) for run in runs]


def _result(run: _PeerRun) -> Dict[str, Any]:
    spec = run.spec
    verdict, services = verdict_with_services(run)
    result: Dict[str, Any] = {
        "name": spec.name, "ae_title": spec.ae_title, "host": spec.host, "port": spec.port,
        "address": run.address, "source_address": run.source_address, "calling_ae_title": spec.calling_ae_title,
        "expect": spec.expect, "outcome": verdict.outcome,
        "ok": expectation_met(spec.expect, verdict.outcome, verdict.phase, verdict.reject),
        "phase": verdict.phase, "message": verdict.message, "status": verdict.status, "reject": verdict.reject,
        "rtt_ms": rtt_statistics(run.rtts), "timings_ms": dict(run.timings), "peer": run.peer_info,
        "transfer_syntax": run.transfer_syntax, "tls": spec.tls.enabled, "started_at": run.started_at,
        "services": services, "tls_certificate": run.tls_certificate,
    }
    if run.request.debug:
        result["debug"] = list(run.debug_lines)
    return result
