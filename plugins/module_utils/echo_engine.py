# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Concurrent C-ECHO engine on top of pynetdicom's association API.

pynetdicom does the protocol (PDUs, the DUL state machine, DIMSE). This module adds what an
audit needs around it: a bounded pool of associations, a watchdog that enforces every timeout
as a wall-clock deadline (pynetdicom's own timeouts do not bound a peer that drips bytes), and
instrumentation of the transport so that each failure is attributed to the phase and cause
that produced it. Nothing here calls Ansible.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import signal
import socket
import ssl
import struct
import threading
import time
import types
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import (
    Observation,
    classify,
    classify_connect_error,
    expectation_met,
    rtt_statistics,
)
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    EchoInputError,
    EchoRequest,
    PeerSpec,
    TlsSettings,
)

# First, so that pynetdicom is imported the module's way wherever the engine is used.
from ansible_collections.dicom.network.plugins.module_utils import _pynetdicom_dep  # noqa: F401, pylint: disable=unused-import

try:
    from pynetdicom import AE, _config as pynetdicom_config, dul as pynetdicom_dul, evt
    from pynetdicom.transport import AssociationSocket
    from pynetdicom.sop_class import Verification
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
except ImportError:  # reported to the user by _pynetdicom_dep.ensure_pynetdicom()
    AE = object
    AssociationSocket = object
    evt = None
    pynetdicom_config = None
    pynetdicom_dul = None

# pynetdicom's own timers are set this much later than our deadlines, so that the watchdog,
# which knows the phase, is the one that decides a timeout.
_PYNETDICOM_TIMEOUT_SLACK_S = 2.0
# Our watchdog's backstop for phases already bounded by a socket timeout (TCP connect).
_BACKSTOP_SLACK_S = 0.5
_WATCHDOG_TICK_S = 0.02
# A phase that has waited this long is a peer not answering, not work for this host: such
# associations stop counting against `parallel`, so that silent peers cost about one timeout
# in all rather than one per `parallel` of them...
_STALLED_AFTER_S = 0.5
# ...but the pool never holds more than this many times `parallel` associations open (nor more
# than _MAX_OPEN, unless `parallel` itself asks for more).
_STALL_HEADROOM = 4
_MAX_OPEN = 256
# An association-phase PDU larger than this cannot be a real answer to our echo; refusing to
# read it avoids buffering whatever a hostile peer claims to send.
_MAX_SANE_PDU_LENGTH = 16 * 1024 * 1024
_VALID_PDU_TYPES = frozenset(range(1, 8))
_PDU_NAMES = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF",
              5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}
_LOG = logging.getLogger("pynetdicom")
# A name with more addresses is tried on its first eight: each may take connect_timeout.
_MAX_ADDRESSES = 8
# A TLS server answers plain DICOM with a TLS record: an alert (0x15) or a handshake (0x16).
_TLS_RECORD_TYPES = (0x15, 0x16)
_TLS_RECORD_HINT = " (a TLS record: this port may expect DICOM over TLS, see tls.enabled)"


class _AlreadyReported(OSError):
    """A step of a peer whose result has been reported already (see _PeerRun.enter)."""


class _PeerRun:
    """Mutable state of one peer's echo, shared by its worker, pynetdicom's threads and the watchdog."""

    def __init__(self, spec: PeerSpec, request: EchoRequest, ssl_context: Optional[ssl.SSLContext]):
        self.spec = spec
        self.request = request
        self.ssl_context = ssl_context
        self.obs = Observation(host=spec.host, port=spec.port, called_ae_title=spec.ae_title,
                               calling_ae_title=spec.calling_ae_title, count=request.count,
                               tls_verified=spec.tls.verify if spec.tls.enabled else None,
                               tls_client_certificate=bool(spec.tls.enabled and spec.tls.cert_file))
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.phase = "resolve"
        self.phase_timeout = request.connect_timeout
        self.phase_since: Optional[float] = None
        self.deadline: Optional[float] = None
        self.raw_socket: Optional[socket.socket] = None
        self.address: Optional[str] = None
        # Every address the host name resolved to, in the resolver's order (at most _MAX_ADDRESSES).
        self.addresses: List[str] = []
        # The local end of the TCP connection: proves which source address the peer saw.
        self.source_address: Optional[str] = None
        self.started_at: Optional[str] = None
        self.started = 0.0
        self.timings: Dict[str, Optional[float]] = {
            "connect": None, "associate": None, "echo": None, "release": None, "total": None}
        self.rtts: List[float] = []
        self.peer_info: Optional[Dict[str, Any]] = None
        self.transfer_syntax: Optional[str] = None
        self.debug_lines: List[str] = []
        self.headers_read = 0
        self.release_complete = False
        self.expected_msg_id: Optional[int] = None
        # Reported while its worker is still stuck (a hung name lookup, or past the hard limit).
        self.abandoned = False

    # -- phases and deadlines -------------------------------------------------------------
    def enter(self, phase: str, timeout: float, slack: float = 0.0) -> None:
        """Start the next step; OSError when this run has been reported already (its name lookup
        returned just as its deadline passed, or it was given up at the hard limit), so that a
        reported peer gets no traffic and no step without a deadline."""
        now = time.monotonic()
        with self.lock:
            if self.done.is_set():
                raise _AlreadyReported("the peer has been reported already; no %s step" % phase)
            self.phase = phase
            self.phase_timeout = timeout
            self.phase_since = now
            self.deadline = now + timeout + slack

    def stalled(self, now: float) -> bool:
        """Waiting over _STALLED_AFTER_S for a peer that has not answered anything yet (name lookup,
        TCP, TLS, A-ASSOCIATE). A peer that has answered is slow, not silent: its association is
        work, and replacing it would give a loaded server more than `parallel` at once."""
        since = self.phase_since
        return (since is not None and now - since > _STALLED_AFTER_S and not self.done.is_set()
                and not self.obs.pdus_received)

    def expire_if_due(self, now: float) -> None:
        with self.lock:
            if self.done.is_set() or self.deadline is None or now < self.deadline:
                return
            if self.obs.timed_out_phase is None:
                self.obs.timed_out_phase = self.phase
                self.obs.timeout_s = self.phase_timeout
            self.deadline = None
            raw = self.raw_socket
            if self.phase == "resolve":
                # getaddrinfo() cannot be interrupted: report now and let the worker finish unseen.
                self.timings["total"] = _ms_since(self.started)
                self.abandoned = True
                self.done.set()
                return
        if raw is not None:
            # Closing the transport wakes pynetdicom's reader at once (Evt17), which ends the
            # association; asking pynetdicom to abort would wait on the unresponsive peer. The plain
            # socket's shutdown also for a TLS socket: its own shutdown() would drop the TLS state
            # under the reader thread.
            try:
                socket.socket.shutdown(raw, socket.SHUT_RDWR)
            except OSError:
                pass

    def debug(self, line: str) -> None:
        if self.request.debug:
            self.debug_lines.append(line)


class _InstrumentedSocket(AssociationSocket):  # type: ignore[misc,valid-type]
    """pynetdicom's transport, with the connect step split into TCP and TLS and each failure kept.

    pynetdicom only logs why a connection failed; classification needs the exception itself,
    and needs to know whether TCP or the TLS handshake failed.
    """

    _dn_run: _PeerRun

    def connect(self, primitive) -> None:  # noqa: C901 - mirrors pynetdicom's own connect()
        run = self._dn_run
        address = getattr(getattr(primitive, "address_info", None), "as_tuple", None) or primitive.address
        tls_args = self.tls_args
        try:
            if self.socket is None:
                self.socket = self._create_socket()
            raw = self.socket
            run.raw_socket = raw
            run.enter("connect", run.request.connect_timeout, _BACKSTOP_SLACK_S)
            raw.settimeout(run.request.connect_timeout)
            started = time.monotonic()
            run.debug("Connecting to %s:%s" % address[:2])
            raw.connect(address)
            run.timings["connect"] = _ms_since(started)
            if tls_args:
                context, server_hostname = tls_args
                run.enter("tls", run.request.connect_timeout, _BACKSTOP_SLACK_S)
                self.socket = context.wrap_socket(raw, server_side=False, server_hostname=server_hostname)
                # wrap_socket() detaches ``raw`` (its descriptor moves to the TLS socket): a timeout must
                # shut the TLS socket's connection down, or a peer silent after the handshake hangs the reader.
                run.raw_socket = self.socket
                cipher = self.socket.cipher()
                run.debug("TLS established: %s, cipher %s" % (self.socket.version(), cipher[0] if cipher else "?"))
            self.socket.settimeout(None)
            local = self.socket.getsockname()
            run.source_address = str(local[0])
            requestor = self.assoc.requestor
            if hasattr(requestor, "address_info"):
                requestor.address_info = type(requestor.address_info).from_tuple(local)
            run.enter("associate", run.request.acse_timeout)
            self._is_connected = True
            evt.trigger(self.assoc, evt.EVT_CONN_OPEN, {"address": address})
            primitive.result = "Evt2"
            self.provider_queue.put(primitive)
        except (OSError, ValueError) as exc:
            if not isinstance(exc, _AlreadyReported):  # the report stands as it was made
                run.obs.connect_error = exc
                run.obs.connect_error_phase = run.phase if run.phase in ("connect", "tls") else "connect"
                run.obs.timeout_s = run.request.connect_timeout
            if self.socket is not None:
                try:
                    self.socket.close()
                except OSError:
                    pass
                self.socket = None
            primitive.result = "Evt17"
            self.provider_queue.put(primitive)
        finally:
            ready = getattr(self, "_ready", None)
            if ready is not None:
                ready.set()

    def recv(self, nr_bytes: int) -> bytearray:
        """Read like pynetdicom, but look at every PDU header first.

        pynetdicom reads a 6-byte header and then the body it announces; a peer that is not
        DICOM at all, or one that announces gigabytes, is caught here instead of being read.
        """
        run = self._dn_run
        expecting_header = not getattr(self, "_dn_in_body", False)
        try:
            data = super().recv(nr_bytes)
        except ssl.SSLError as exc:
            # TLS 1.3 servers check the client certificate after the handshake: their refusal
            # arrives as an alert on the first read, which pynetdicom would take for a close.
            if not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) and run.obs.tls_alert is None:
                run.obs.tls_alert = exc.reason or str(exc)
                run.obs.tls_alert_phase = run.phase
            raise
        if expecting_header and nr_bytes == 6:
            if len(data) == 6:
                pdu_type, _reserved, length = struct.unpack(">BBL", bytes(data))
                run.headers_read += 1
                if pdu_type not in _VALID_PDU_TYPES:
                    self._protocol_violation(run, "unknown PDU type 0x%02X, first bytes %s%s"
                                             % (pdu_type, _printable(data),
                                                _TLS_RECORD_HINT if pdu_type in _TLS_RECORD_TYPES
                                                and run.obs.tls_verified is None else ""))
                elif length > _MAX_SANE_PDU_LENGTH:
                    self._protocol_violation(run, "%s announces %d bytes, more than any answer to an echo"
                                             % (_PDU_NAMES[pdu_type], length))
                self._dn_in_body = length > 0
                self._dn_pdu = (pdu_type, length)
            elif data and run.obs.timed_out_phase is None:
                self._protocol_violation(run, "connection closed after %d byte(s) %s of a PDU header"
                                         % (len(data), _printable(data)))
        else:
            self._dn_in_body = False
            pdu_type, length = getattr(self, "_dn_pdu", (0, nr_bytes))
            if len(data) < nr_bytes and run.obs.timed_out_phase is None:
                self._protocol_violation(run, "connection closed after %d of the %d bytes the %s announced"
                                         % (len(data), length, _PDU_NAMES.get(pdu_type, "PDU")))
        return data

    def _protocol_violation(self, run: _PeerRun, reason: str) -> None:
        if run.obs.protocol_violation is None:
            run.obs.protocol_violation = reason
            run.obs.protocol_violation_phase = run.phase
        # Raising makes pynetdicom treat the transport as closed (Evt17) instead of reading on.
        raise OSError("protocol violation: %s" % reason)


def _kill_promptly(assoc) -> None:
    """pynetdicom's Association.kill(), polling every 0.5 ms instead of 10 ms.

    After the A-RELEASE-RP the worker usually arrives here before the DUL thread has stopped,
    and pynetdicom's 10 ms sleep was then 40 % of a whole echo's wall time on a LAN.
    """
    assoc._reactor_checkpoint.set()
    assoc._kill = True
    assoc.is_established = False
    assoc._is_paused = True
    while assoc.dul.is_alive() and not assoc.dul.stop_dul():
        time.sleep(0.0005)


def _abort_promptly(assoc, block: bool = True) -> None:
    """pynetdicom's Association.abort() without the fixed 0.1 s sleep it ends with.

    The A-ABORT is still queued and sent, and kill() (here _kill_promptly) still waits until the
    DUL is idle and its thread has stopped, which is what the sleep was meant to let happen.
    pynetdicom aborts every association whose connection fails, so each refused port, connect
    timeout, ACSE timeout and abort of ours held its worker for 0.1 s more: 500 refused peers took
    3.6 s at parallel 16. Same steps as pynetdicom 2.0 and 3.0 (``block`` is 3.0's).
    """
    if assoc._sent_abort or assoc.is_released:
        return
    # Set before waking the reactor, as pynetdicom does, so that only one A-ABORT is sent.
    assoc._sent_abort = True
    assoc._reactor_checkpoint.set()
    _LOG.info("Aborting Association")
    assoc.acse.send_abort(0x00)
    evt.trigger(assoc, evt.EVT_ABORTED, {})
    if not block:
        return
    assoc.kill()
    try:
        assoc.dul.socket._shutdown_socket()
    except Exception:  # pylint: disable=broad-except  # as pynetdicom: the socket may be gone already
        pass


def _no_reactor(assoc) -> None:
    """Replaces the requestor's Association reactor, which only serves requests *from* the peer.

    An echo SCU never serves any, and pynetdicom pauses the reactor around every send_c_echo()
    and release() anyway: its 1 ms polling loop and the 0.1 ms spins waiting for it to pause
    were pure CPU per association. Aborts and closed connections still reach send_c_echo()
    through the DIMSE queue, and the worker reads the DUL's state instead of is_established.
    """
    assoc._is_paused = True


class _DulWaker:
    """Lets a DUL thread sleep until its socket has data or the worker hands it a PDU to send.

    pynetdicom's DUL reactor polls: select(timeout 0), then sleep 1 ms when nothing happened.
    With dozens of associations that is thousands of wake-ups a second, the largest share of
    the engine's CPU, and every PDU waits up to a poll interval in each direction. Here the
    same sleep waits on the socket and on this waker instead; pynetdicom's loop, state machine
    and PDU handling are untouched.
    """

    # Upper bound of one wait, so that the ARTIM timer and anything not woken are still seen.
    MAX_WAIT_S = 0.02

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)

    def wake(self) -> None:
        try:
            self.writer.send(b"\0")
        except OSError:  # buffer full (already awake) or closed (association over)
            pass

    def wait(self, dul) -> None:
        transport = dul.socket
        fds: List[Any] = [self.reader]
        sock = getattr(transport, "socket", None)
        if sock is not None and getattr(transport, "_is_connected", False):
            fds.append(sock)
        try:
            readable = select.select(fds, [], [], self.MAX_WAIT_S)[0]
        except (OSError, ValueError):
            # The transport or this waker was just closed: pynetdicom's own checks see that
            # next; sleeping like pynetdicom meanwhile keeps a closed socket from spinning.
            time.sleep(dul._run_loop_delay)
            return
        if self.reader in readable:
            try:
                while self.reader.recv(4096):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        for end in (self.reader, self.writer):
            try:
                end.close()
            except OSError:
                pass


class _DulClock:
    """The ``time`` module as pynetdicom.dul sees it: its sleep() waits on the DUL's waker.

    Only DUL threads of this engine's associations carry a waker; every other caller
    (pynetdicom's own SCPs in the same process, stop_dul() from a worker) sleeps as before.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        thread = threading.current_thread()
        waker = getattr(thread, "_dn_waker", None)
        if waker is None:
            time.sleep(seconds)
        else:
            waker.wait(thread)


def _install_dul_clock() -> None:
    if pynetdicom_dul is not None and not isinstance(pynetdicom_dul.time, _DulClock):
        pynetdicom_dul.time = _DulClock()


def _send_pdu_and_wake(dul, primitive) -> None:
    type(dul).send_pdu(dul, primitive)
    dul._dn_waker.wake()


def _stop_dul_promptly(dul) -> bool:
    """pynetdicom's stop_dul(), waking the DUL instead of waiting for its next poll."""
    if dul.state_machine.current_state != "Sta1":
        return False
    dul._kill_thread = True
    dul._dn_waker.wake()
    if threading.current_thread() is not dul:
        dul.join(_DulWaker.MAX_WAIT_S * 10)
    return True


# Switches for the benchmarks' A/B runs only.
_REACTORLESS = True
_EVENT_DRIVEN_DUL = True
_PROMPT_ABORT = True
_SECOND_PROCESS = True


class _EchoAE(AE):  # type: ignore[misc,valid-type]
    """An AE whose associations use the instrumented transport of one peer run."""

    def __init__(self, run: _PeerRun, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._dn_run = run

    def _create_socket(self, assoc, address, tls_args):
        sock = _InstrumentedSocket(assoc, address=address)
        sock.tls_args = tls_args
        sock._dn_run = self._dn_run
        # pynetdicom's threads carry the run too, for the event handlers and the debug log router.
        assoc._dn_run = self._dn_run
        assoc.dul._dn_run = self._dn_run
        assoc.kill = types.MethodType(_kill_promptly, assoc)
        if _PROMPT_ABORT:
            # pynetdicom 3 reaches abort() through _abort_blocking (its ACSE rebinds ``abort`` to it).
            assoc.abort = assoc._abort_blocking = types.MethodType(_abort_promptly, assoc)
        if _REACTORLESS:
            assoc._run_reactor = types.MethodType(_no_reactor, assoc)
            assoc._is_paused = True
        if _EVENT_DRIVEN_DUL:
            dul = assoc.dul
            dul._dn_waker = _DulWaker()
            dul.send_pdu = types.MethodType(_send_pdu_and_wake, dul)
            dul.stop_dul = types.MethodType(_stop_dul_promptly, dul)
        return sock


def _printable(data: Any) -> str:
    raw = bytes(data[:16])
    text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in raw)
    return "%s (%r)" % (raw.hex(), text)


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000.0, 3)


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ")


def _on_pdu_recv(event) -> None:
    run: _PeerRun = event.assoc._dn_run  # type: ignore[attr-defined]
    run.obs.pdus_received += 1
    pdu = event.pdu
    kind = type(pdu).__name__
    if kind == "A_ASSOCIATE_RJ":
        run.obs.reject = {"result": int(pdu.result or 0), "source": int(pdu.source or 0),
                          "diagnostic": int(pdu.reason_diagnostic or 0)}
    elif kind == "A_ASSOCIATE_AC":
        run.obs.accepted = True
        info = pdu.user_information
        run.peer_info = {
            "implementation_class_uid": _text(getattr(info, "implementation_class_uid", None)),
            "implementation_version_name": _text(getattr(info, "implementation_version_name", None)),
            "max_pdu": getattr(info, "maximum_length", None),
        }
        proposed = {cx.context_id for cx in event.assoc.requestor.requested_contexts}
        for item in pdu.presentation_context:
            if item.context_id not in proposed:
                if run.obs.protocol_violation is None:
                    run.obs.protocol_violation = ("A-ASSOCIATE-AC answers presentation context ID %s, which was "
                                                  "not proposed" % item.context_id)
                    run.obs.protocol_violation_phase = run.phase
                continue
            run.obs.context_result = item.result if item.result is not None else item.result_reason
            if run.obs.context_result == 0:
                run.transfer_syntax = _text(item.transfer_syntax)
    elif kind == "A_ABORT_RQ":
        run.obs.peer_abort = {"source": pdu.source, "reason": pdu.reason_diagnostic, "phase": run.phase}
        run.debug("Received A-ABORT: source %s, reason %s" % (pdu.source, pdu.reason_diagnostic))
    elif kind == "A_RELEASE_RP":
        run.release_complete = True
    elif kind == "A_RELEASE_RQ" and run.phase != "release":
        run.obs.protocol_violation = run.obs.protocol_violation or "peer sent A-RELEASE-RQ during %s" % run.phase
        run.obs.protocol_violation_phase = run.obs.protocol_violation_phase or run.phase
        if run.phase == "echo":
            # No C-ECHO-RSP can follow; wake send_c_echo() instead of letting it wait out the DIMSE timeout.
            event.assoc.dimse.msg_queue.put((None, None))


def _on_fsm_transition(event) -> None:
    run: _PeerRun = event.assoc._dn_run  # type: ignore[attr-defined]
    fsm_event = getattr(event, "fsm_event", None)
    action = getattr(event, "action", None)
    if fsm_event == "Evt19" and run.obs.protocol_violation is None:
        run.obs.protocol_violation = "a PDU that could not be decoded"
        run.obs.protocol_violation_phase = run.phase
    elif action == "AA-8" and run.obs.protocol_violation is None:
        run.obs.protocol_violation = "a PDU not allowed in state %s (%s)" % (
            getattr(event, "current_state", "?"), fsm_event)
        run.obs.protocol_violation_phase = run.phase
    elif fsm_event == "Evt17" and getattr(event, "current_state", None) != "Sta13" \
            and run.obs.timed_out_phase is None and not run.release_complete \
            and run.obs.peer_closed_phase is None and run.obs.connect_error is None:
        run.obs.peer_closed_phase = run.phase


def _on_dimse_recv(event) -> None:
    run: _PeerRun = event.assoc._dn_run  # type: ignore[attr-defined]
    command = event.message.command_set
    problem = None
    field = command.get("CommandField")
    if field != 0x8030:
        problem = "answered the C-ECHO-RQ with command field 0x%04X, not a C-ECHO-RSP" % (field or 0)
    elif command.get("MessageIDBeingRespondedTo") != run.expected_msg_id:
        problem = "C-ECHO-RSP answers message ID %s, expected %s" % (
            command.get("MessageIDBeingRespondedTo"), run.expected_msg_id)
    elif "AffectedSOPClassUID" in command and command.AffectedSOPClassUID != Verification:
        problem = "C-ECHO-RSP names SOP class %s, not Verification" % command.AffectedSOPClassUID
    if problem and run.obs.protocol_violation is None:
        run.obs.protocol_violation = problem
        run.obs.protocol_violation_phase = "echo"


def _guard_reactor(assoc) -> None:
    """pynetdicom's reactor may take the response off the DIMSE queue while send_c_echo() waits
    for it (its pause flag is stale right after the previous send); put such messages back."""
    serve = assoc._serve_request

    def serve_or_requeue(msg, context_id):
        if not assoc._reactor_checkpoint.is_set():
            assoc.dimse.msg_queue.put((context_id, msg))
            return
        serve(msg, context_id)
    assoc._serve_request = serve_or_requeue


def _still_established(assoc) -> bool:
    """Whether the association can still carry a request; if not, end it as the reactor would have.

    Without the requestor reactor nobody else notices that the peer aborted or closed the
    connection while send_c_echo() was waiting; the DUL's state machine knows.
    """
    if not assoc.is_established:
        return False
    if not _REACTORLESS:
        return True
    state = assoc.dul.state_machine.current_state
    if state == "Sta6":
        return True
    assoc.is_established = False
    if state == "Sta1":
        assoc.is_aborted = True
        assoc.kill()
    else:
        # For example Sta8 after the peer's own A-RELEASE-RQ (already reported as a protocol
        # violation); an abort ends any state, bounded by the watchdog's deadline.
        assoc.abort()
    return False


def _event_handlers() -> list:
    return [(evt.EVT_PDU_RECV, _on_pdu_recv), (evt.EVT_FSM_TRANSITION, _on_fsm_transition),
            (evt.EVT_DIMSE_RECV, _on_dimse_recv)]


class _DebugLogRouter(logging.Handler):
    """Collects pynetdicom's own log lines (the echoscu -d style dump) for the run that emitted them."""

    def emit(self, record: logging.LogRecord) -> None:
        run = getattr(threading.current_thread(), "_dn_run", None)
        if run is not None and run.request.debug:
            try:
                run.debug_lines.append(record.getMessage())
            except Exception:  # noqa: BLE001 - a log line must never break an echo
                pass


class TlsSetupError(Exception):
    """A TLS file of this host cannot be used: only the peers whose settings name it fail."""

    def __init__(self, field_name: Optional[str], detail: str):
        super().__init__(detail)
        self.field_name = field_name
        self.detail = detail

    def for_settings(self, tls: TlsSettings) -> str:
        """The problem, named as the settings were given (module ``tls`` or a peer's)."""
        return "%s%s: %s" % (tls.origin, "." + self.field_name if self.field_name else "", self.detail)


def _check_tls_file(key: str, path: Optional[str]) -> None:
    if path is None:
        return
    if os.path.isdir(path):
        raise TlsSetupError(key, "%s is a directory, not a file" % path)
    if not os.path.isfile(path):
        raise TlsSetupError(key, "file %s does not exist" % path)
    if not os.access(path, os.R_OK):
        raise TlsSetupError(key, "file %s is not readable" % path)


def build_ssl_context(tls: TlsSettings) -> Optional[ssl.SSLContext]:
    """An SSL context for one TLS setting, loaded before any traffic so a bad file sends nothing."""
    if not tls.enabled:
        return None
    for key in ("ca_file", "cert_file", "key_file"):
        _check_tls_file(key, getattr(tls, key))
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsSetupError("ca_file" if tls.ca_file else None, "%s holds no usable PEM CA certificate: %s" % (
            tls.ca_file or "the system trust store", getattr(exc, "reason", None) or exc)) from None
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file, password=tls.key_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            field_name, detail = _client_key_problem(tls, getattr(exc, "reason", None))
            raise TlsSetupError(field_name, "%s (%s)" % (
                detail, getattr(exc, "reason", None) or exc)) from None
    return context


def _read_head(path: Optional[str]) -> bytes:
    try:
        with open(path or "", "rb") as stream:
            return stream.read(1 << 20)
    except OSError:
        return b""


def _client_key_problem(tls: TlsSettings, reason: Optional[str] = None) -> Tuple[Optional[str], str]:
    """Why the client certificate and key did not load, in the settings' words.

    OpenSSL says only "PEM lib" or "Invalid argument" for a certificate that is not PEM, a missing or
    wrong password and a certificate file without a key; the PEM headers tell those cases apart.
    """
    certificate = _read_head(tls.cert_file)
    if b"CERTIFICATE-----" not in certificate:
        # DER (what Windows CAs often hand out) starts with an ASN.1 SEQUENCE.
        hint = (": it looks like DER, convert it with openssl x509 -inform DER -in %s -out client.pem" % tls.cert_file
                if certificate[:1] == b"\x30" else "")
        return "cert_file", "%s holds no PEM certificate%s" % (tls.cert_file, hint)
    key_path = tls.key_file or tls.cert_file
    pem = _read_head(key_path)
    if reason == "KEY_VALUES_MISMATCH" and b"PRIVATE KEY-----" in pem:
        return "key_file" if tls.key_file else "cert_file", "the private key in %s is not the key of cert_file %s" % (
            key_path, tls.cert_file)
    if b"PRIVATE KEY-----" not in pem:
        if tls.key_file:
            return "key_file", "%s holds no PEM private key" % tls.key_file
        return "key_file", "not set, and cert_file %s holds no private key: set key_file" % tls.cert_file
    if b"ENCRYPTED" in pem:
        where = "key_file" if tls.key_file else "cert_file"
        if tls.key_password is None:
            return "key_password", "not set, but the private key in %s %s is encrypted" % (where, key_path)
        return "key_password", "does not decrypt the private key in %s %s (or that key is damaged)" % (where, key_path)
    return None, "cannot load cert_file %s with %s %s: is the key the certificate's own?" % (
        tls.cert_file, "key_file" if tls.key_file else "its key in", key_path)


def _bind_family(address: str) -> Tuple[int, int]:
    """The address family (and IP version) that a bind address imposes on the peers."""
    return (socket.AF_INET6, 6) if ":" in address else (socket.AF_INET, 4)


def check_bind_address(address: Optional[str]) -> None:
    """Bind once to ``address`` before any peer: a wrong one is this host's mistake, not every peer's."""
    if not address:
        return
    family, version = _bind_family(address)
    try:
        infos = socket.getaddrinfo(address, 0, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise EchoInputError("bind_address %r does not resolve to an IPv%d address: %s"
                             % (address, version, getattr(exc, "strerror", None) or exc)) from None
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.bind(infos[0][4])
    except OSError as exc:
        raise EchoInputError("bind_address %r (%s) is not an address of this host: %s"
                             % (address, infos[0][4][0], exc.strerror or exc)) from None
    finally:
        probe.close()


def _resolve(run: _PeerRun) -> bool:
    """Look the peer's name up; False when it failed or the run was reported meanwhile (a lookup that
    returned after its deadline: the report stands as the watchdog made it, so nothing is written)."""
    spec = run.spec
    bind_address = run.request.bind_address
    family, version = _bind_family(bind_address) if bind_address else (0, 0)
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


def _echo_one(run: _PeerRun) -> None:
    spec, request = run.spec, run.request
    threading.current_thread()._dn_run = run  # type: ignore[attr-defined]
    run.started = time.monotonic()
    run.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    if run.obs.tls_setup_error is not None:
        return
    run.enter("resolve", request.connect_timeout)
    if not _resolve(run) or run.done.is_set():
        return
    for index, address in enumerate(run.addresses):
        run.address = address
        _associate_and_echo(run)
        if not _may_try_next_address(run, index):
            return
        run.debug("TCP connect to %s failed (%s); trying the next address of %s"
                  % (address, run.obs.connect_error, spec.host))
        _forget_failed_connect(run)


def _associate_and_echo(run: _PeerRun) -> None:
    spec, request = run.spec, run.request
    ae = _EchoAE(run, ae_title=spec.calling_ae_title)
    ae.add_requested_context(Verification, [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
    ae.connection_timeout = request.connect_timeout
    ae.acse_timeout = request.acse_timeout + _PYNETDICOM_TIMEOUT_SLACK_S
    ae.dimse_timeout = request.dimse_timeout + _PYNETDICOM_TIMEOUT_SLACK_S
    ae.network_timeout = max(request.acse_timeout, request.dimse_timeout) + _PYNETDICOM_TIMEOUT_SLACK_S
    kwargs: Dict[str, Any] = {"ae_title": spec.ae_title, "max_pdu": request.max_pdu,
                              "evt_handlers": _event_handlers()}
    if request.bind_address:
        kwargs["bind_address"] = (request.bind_address, 0)
    if run.ssl_context is not None:
        kwargs["tls_args"] = (run.ssl_context, spec.tls.server_hostname or spec.host)
    associate_started = time.monotonic()
    assoc = ae.associate(run.address, spec.port, **kwargs)
    try:
        if run.timings["connect"] is not None:
            run.timings["associate"] = round(_ms_since(associate_started) - run.timings["connect"], 3)
        if not assoc.is_established:
            return
        _guard_reactor(assoc)
        echo_started = time.monotonic()
        for message_id in range(1, request.count + 1):
            run.enter("echo", request.dimse_timeout)
            sent = time.monotonic()
            run.expected_msg_id = message_id
            status = assoc.send_c_echo(msg_id=message_id)
            if run.obs.protocol_violation is not None:
                break
            if status is not None and "Status" in status:
                run.rtts.append(_ms_since(sent))
                run.obs.statuses.append(int(status.Status))
                if int(status.Status) != 0x0000:
                    break
            else:
                run.obs.echo_failed_without_status = True
                break
            if not _still_established(assoc):
                break
        run.timings["echo"] = _ms_since(echo_started)
        if _still_established(assoc):
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
        # pynetdicom's _shutdown_socket() skips close() when shutdown() fails (peer already
        # reset or closed), leaving the descriptor to the garbage collector.
        transport = getattr(getattr(assoc, "dul", None), "socket", None)
        sock = getattr(transport, "socket", None)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        waker = getattr(getattr(assoc, "dul", None), "_dn_waker", None)
        if waker is not None:
            waker.close()


def open_limit(parallel: int) -> int:
    """The most associations a run with this `parallel` ever has open, stalled ones included."""
    return min(parallel * _STALL_HEADROOM, max(parallel, _MAX_OPEN))


class _InputOrder:
    """The runs of one process, taken in input order."""

    def __init__(self, count: int):
        self.count = count
        self.next_index = 0

    def take(self) -> Optional[int]:
        if self.next_index >= self.count:
            return None
        self.next_index += 1
        return self.next_index - 1

    def remaining(self) -> int:
        return self.count - self.next_index


class _SharedQueue:
    """Run indices in a pipe that two processes read: whichever has a free worker takes the next.

    Written in full and closed for writing before the fork, so a read never blocks: it returns
    one whole index (every read asks for one record, and the pipe holds whole records) or, once
    all are taken, end of file. Both processes thus take peers in input order as they have room,
    however the slow peers are spread.
    """

    RECORD = struct.Struct(">I")
    # F_SETPIPE_SZ (Linux); more peers than the default 64 KiB pipe holds need a larger pipe.
    _SET_PIPE_SIZE = 1031

    def __init__(self, fd: int):
        self.fd = fd
        self.exhausted = False

    @classmethod
    def holding(cls, count: int) -> Optional["_SharedQueue"]:
        """A queue of ``count`` indices, or None when this system cannot hold them in a pipe."""
        data = b"".join(cls.RECORD.pack(index) for index in range(count))
        reader, writer = os.pipe()
        try:
            os.set_blocking(writer, False)
            if len(data) > 65536:
                import fcntl  # pylint: disable=import-outside-toplevel  # Linux only, and only here
                fcntl.fcntl(writer, cls._SET_PIPE_SIZE, len(data))
            if os.write(writer, data) != len(data):
                raise OSError("pipe too small")
        except (OSError, ImportError):
            os.close(reader)
            return None
        finally:
            os.close(writer)
        return cls(reader)

    def take(self) -> Optional[int]:
        if self.exhausted:
            return None
        record = os.read(self.fd, self.RECORD.size)
        if len(record) < self.RECORD.size:
            self.exhausted = True
            return None
        return self.RECORD.unpack(record)[0]

    def remaining(self) -> int:
        # Unknown (the other process takes too): more than any pool starts workers for.
        return 0 if self.exhausted else _MAX_OPEN * _STALL_HEADROOM

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class _Pool:
    """The runs not started yet, the ones in flight, and the worker threads echoing them.

    At most `parallel` associations do work at a time; one whose current phase has stalled
    (a silent or dripping peer) is replaced by an extra worker, up to a hard limit.
    """

    def __init__(self, runs: List[_PeerRun], parallel: int, limit: Optional[int] = None,
                 source: Union[_InputOrder, _SharedQueue, None] = None):
        self.runs = runs
        self.source = source if source is not None else _InputOrder(len(runs))
        # Indices of the runs this process took, in the order it took them.
        self.taken: List[int] = []
        self.active: set = set()
        self.lock = threading.Lock()
        self.took = threading.Condition(self.lock)
        self.parallel = parallel
        self.limit = open_limit(parallel) if limit is None else limit
        self.workers = 0
        self.started = 0
        self.peak = 0
        # Set when this process stops echoing (see _echo_in_this_process): no worker takes another run.
        self.closing = False

    def take(self) -> Optional[_PeerRun]:
        """The next run for a worker that is free, or None when that worker is to end."""
        with self.lock:
            surplus = self.workers > self.parallel and self.workers > self.parallel + self._replaced(time.monotonic())
            if self.closing or surplus:
                # This process has stopped echoing, or this worker was started in place of an
                # association that has since ended: without retiring it, more than `parallel` would do
                # work from now on, and a server whose association limit `parallel` was lowered for
                # would reject the surplus.
                self.workers -= 1
                return None
            index = self.source.take()
            self.took.notify_all()
            if index is None:
                self.workers -= 1
                return None
            run = self.runs[index]
            self.taken.append(index)
            self.active.add(run)
            self.peak = max(self.peak, len(self.active))
            return run

    def next_taken(self, position: int) -> Optional[int]:
        """The index of the run this process took at ``position``; None once no more will be taken."""
        with self.lock:
            while position >= len(self.taken) and self.source.remaining():
                self.took.wait(0.5)
            return self.taken[position] if position < len(self.taken) else None

    def finish(self, run: _PeerRun) -> None:
        with self.lock:
            self.active.discard(run)

    def running(self) -> List[_PeerRun]:
        with self.lock:
            return list(self.active)

    def _replaced(self, now: float) -> int:
        """How many runs in flight have a worker in their place (stalled, or abandoned); under the lock."""
        return sum(1 for run in self.active if run.stalled(now) or run.abandoned)

    def grow(self, now: float) -> None:
        """Start workers until `parallel` of them are not stalled, within the limit.

        A run reported while its worker is stuck where no deadline reaches (a name lookup that
        hangs) keeps that thread until it returns: it is replaced like a stalled one.
        """
        with self.lock:
            # A worker stuck in a name lookup holds no socket, so it does not count against the open
            # limit (else enough hung lookups would leave the other peers waiting for the resolver);
            # past _MAX_OPEN of them, the run waits for the resolver rather than start more threads.
            hung_lookups = min(sum(1 for run in self.active if run.raw_socket is None and (
                run.abandoned or (run.phase == "resolve" and run.stalled(now)))), _MAX_OPEN)
            wanted = min(self.parallel + self._replaced(now), self.limit + hung_lookups,
                         self.workers + self.source.remaining())
            new = max(wanted - self.workers, 0)
            self.workers += new
        for position in range(new):
            self.started += 1
            try:
                threading.Thread(target=_worker, args=(self,), name="dicom-echo-%d" % self.started, daemon=True).start()
            except RuntimeError:
                # No thread to be had now (a pids limit): the watchdog, which runs this, must live on to
                # enforce the deadlines; the workers not started are tried again on its next tick.
                with self.lock:
                    self.workers -= new - position
                return


def _worker(pool: _Pool) -> None:
    while True:
        run = pool.take()
        if run is None:
            return
        try:
            _echo_one(run)
        except Exception as exc:  # noqa: BLE001 - one peer's surprise must not cost the others
            if run.obs.protocol_violation is None and run.obs.connect_error is None and not run.done.is_set():
                run.obs.protocol_violation = "unexpected error while talking to the peer: %s: %s" % (
                    type(exc).__name__, exc)
                run.obs.protocol_violation_phase = run.phase
        finally:
            with run.lock:
                run.deadline = None
                if not run.done.is_set():
                    run.timings["total"] = _ms_since(run.started) if run.started else 0.0
                    run.done.set()
            pool.finish(run)


def _watchdog(pool: _Pool, stop: threading.Event) -> None:
    while not stop.wait(_WATCHDOG_TICK_S):
        now = time.monotonic()
        for run in pool.running():
            if not run.done.is_set():
                run.expire_if_due(now)
        if pool.source.remaining():
            pool.grow(now)


def _hard_limit(request: EchoRequest, run: Optional[_PeerRun]) -> float:
    """The longest one peer may take, even if a thread is stuck where no socket can be closed.

    Without ``run``: the longest any peer may take (one whose name has the most addresses tried).
    """
    addresses = len(run.addresses) if run is not None else _MAX_ADDRESSES
    return ((1 + max(addresses, 1)) * request.connect_timeout + 2 * request.acse_timeout
            + request.count * request.dimse_timeout + 3 * _PYNETDICOM_TIMEOUT_SLACK_S)


def _result(run: _PeerRun) -> Dict[str, Any]:
    spec = run.spec
    verdict = classify(run.obs)
    rtt = rtt_statistics(run.rtts)
    result: Dict[str, Any] = {
        "name": spec.name,
        "ae_title": spec.ae_title,
        "host": spec.host,
        "port": spec.port,
        "address": run.address,
        "source_address": run.source_address,
        "calling_ae_title": spec.calling_ae_title,
        "expect": spec.expect,
        "outcome": verdict.outcome,
        "ok": expectation_met(spec.expect, verdict.outcome, verdict.phase, verdict.reject),
        "phase": verdict.phase,
        "message": verdict.message,
        "status": verdict.status,
        "reject": verdict.reject,
        "rtt_ms": rtt,
        "timings_ms": dict(run.timings),
        "peer": run.peer_info,
        "transfer_syntax": run.transfer_syntax,
        "tls": spec.tls.enabled,
        "started_at": run.started_at,
    }
    if run.request.debug:
        result["debug"] = list(run.debug_lines)
    return result


def run_echoes(request: EchoRequest) -> List[Dict[str, Any]]:
    """Echo every peer of ``request`` concurrently and return one result per peer, in input order.

    Many peers are shared with a second process (see _SecondProcess); its results are merged
    in, and any it took but did not deliver are echoed here, so that every peer gets its result.
    """
    check_bind_address(request.bind_address)
    helper = _SecondProcess.start(request)
    if helper is None:
        results = _echo_in_this_process(request)
    else:
        try:
            results = _echo_in_this_process(helper.own_request, helper.own_open_limit, helper.queue)
            results.update(helper.collect())
        except BaseException:
            helper.stop()
            raise
        missing = [index for index in range(len(request.peers)) if index not in results]
        if missing:
            redone = _echo_in_this_process(dataclasses.replace(
                request, peers=[request.peers[index] for index in missing]))
            results.update((missing[position], result) for position, result in redone.items())
    return [results[index] for index in range(len(request.peers))]


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _die_with(parent_pid: int) -> None:
    """Make this process end when the original does (Linux: PR_SET_PDEATHSIG), so that a killed
    module leaves nothing echoing behind it."""
    try:
        import ctypes  # pylint: disable=import-outside-toplevel  # only in the copy
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError, ImportError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


class _SecondProcess:
    """A copy of this process made with fork() that echoes peers too, its results streamed back.

    pynetdicom spends about 3-4 ms of CPU per association in Python, and one interpreter runs
    Python on one core at a time: with hundreds of peers a single process is CPU-bound on one
    core while the others idle. Both processes take the next peer from one shared queue
    whenever they have room, so slow peers hold back neither. The copy shares nothing else at
    run time; `parallel`, and the most associations open while some stall, are split between
    the two, so the host opens no more than configured. It is only made while this process has
    no other thread (a fork copies just the calling thread, and a lock another thread held
    would stay held in the copy).
    """

    MIN_PEERS = 64
    MIN_PARALLEL = 4
    # The copy reports each result once it and those it took before are done. One that delivers
    # none for longer than two peers may take in a row (the next may wait for a free worker
    # first) is stuck where no deadline reaches: it is killed, and the peers it took but did not
    # deliver are echoed here.
    STALL_SLACK_S = 5.0

    def __init__(self, request: EchoRequest, queue: _SharedQueue, pid: int, reader: int):
        self.queue = queue
        (self.own_request, self.own_open_limit), _copy_share = self.shares(request)
        self.pid = pid
        self.stream = os.fdopen(reader, "rb")
        self.delivered: Dict[int, Dict[str, Any]] = {}
        self.last_progress = time.monotonic()
        self.stall_limit = self.stall_limit_for(request)
        self.reader = threading.Thread(target=self._read, name="dicom-echo-second-process", daemon=True)
        self.reader.start()

    @staticmethod
    def shares(request: EchoRequest) -> Tuple[Tuple[EchoRequest, int], Tuple[EchoRequest, int]]:
        """(request, open-association limit) of this process and of the copy: `parallel` and the
        limit split in two, so that together they open no more than configured."""
        limit = open_limit(request.parallel)
        copy_parallel, copy_limit = request.parallel // 2, limit // 2
        return ((dataclasses.replace(request, parallel=request.parallel - copy_parallel), limit - copy_limit),
                (dataclasses.replace(request, parallel=copy_parallel), copy_limit))

    @classmethod
    def stall_limit_for(cls, request: EchoRequest) -> float:
        return 2 * _hard_limit(request, None) + cls.STALL_SLACK_S

    @classmethod
    def start(cls, request: EchoRequest) -> Optional["_SecondProcess"]:
        if not (_SECOND_PROCESS and hasattr(os, "fork") and len(request.peers) >= cls.MIN_PEERS
                and request.parallel >= cls.MIN_PARALLEL and _usable_cpus() > 1
                and threading.active_count() == 1):
            return None
        queue = _SharedQueue.holding(len(request.peers))
        if queue is None:
            return None
        try:
            reader, writer = os.pipe()
        except OSError:
            queue.close()
            return None
        if min(queue.fd, reader, writer) <= 2:
            # A process started with stdin, stdout or stderr closed: the copy points those at
            # /dev/null, which would replace the queue or its result pipe.
            for fd in (reader, writer):
                os.close(fd)
            queue.close()
            return None
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            for fd in (reader, writer):
                os.close(fd)
            queue.close()
            return None
        if pid == 0:
            cls._serve(request, queue, parent, reader, writer)
        os.close(writer)
        try:
            return cls(request, queue, pid, reader)
        except BaseException:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise

    @staticmethod
    def _serve(request: EchoRequest, queue: _SharedQueue, parent: int, reader: int, writer: int) -> None:
        """The copy: echo what it takes from the queue, write one JSON line per result as it goes,
        and leave without cleanup.

        Its standard streams go to /dev/null: an Ansible module's stdout carries the module's one
        result, and a copy holding it open would keep Ansible waiting. os._exit() skips the
        interpreter's exit handlers and buffered output, which belong to the original process (an
        Ansible module's result and temporary files).
        """
        code = 1
        try:
            os.close(reader)
            _die_with(parent)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)

            def send(index: int, result: Dict[str, Any]) -> None:
                line = json.dumps([index, result]).encode("utf-8") + b"\n"
                while line:
                    line = line[os.write(writer, line):]

            copy_request, copy_limit = _SecondProcess.shares(request)[1]
            _echo_in_this_process(copy_request, copy_limit, queue, send)
            code = 0
        finally:
            os._exit(code)

    def _read(self) -> None:
        try:
            for line in self.stream:
                index, result = json.loads(line)
                self.delivered[int(index)] = result
                self.last_progress = time.monotonic()
        except (OSError, ValueError):
            pass  # a copy that died mid-line: the peers it did not deliver are echoed by the caller

    def collect(self) -> Dict[int, Dict[str, Any]]:
        """The copy's results once it has finished, or what it delivered before it stalled."""
        while self.reader.is_alive():
            self.reader.join(0.5)
            if self.reader.is_alive() and time.monotonic() - self.last_progress > self.stall_limit:
                self._kill()
                self.reader.join(1.0)
                break
        self._reap()
        self.stream.close()
        # This process has taken its last index (its share ended at the end of the queue).
        self.queue.close()
        return dict(self.delivered)

    def stop(self) -> None:
        """End the copy now (this process is failing): nothing of it is left running."""
        self._kill()
        self._reap()
        self.stream.close()
        # Not closed: this process's workers may still be taking from it, and a closed descriptor's
        # number can be reused by the next file opened. They now find it empty.
        self.queue.exhausted = True

    def _kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def _reap(self) -> None:
        deadline = time.monotonic() + 2.0
        while True:
            try:
                pid, _status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            if time.monotonic() > deadline:
                self._kill()
                deadline = float("inf")
            time.sleep(0.005)


def _echo_in_this_process(request: EchoRequest, open_limit_share: Optional[int] = None,
                          source: Optional[_SharedQueue] = None,
                          on_result: Optional[Callable[[int, Dict[str, Any]], None]] = None
                          ) -> Dict[int, Dict[str, Any]]:
    """Echo the peers of ``request`` with this process's threads: all of them, or with ``source`` the
    ones this process takes from a queue shared with the other process. Returns each result by its
    index in ``request.peers``; ``on_result`` gets each one as soon as it and those taken before it
    are done."""
    contexts: Dict[TlsSettings, Union[ssl.SSLContext, TlsSetupError, None]] = {}
    runs: List[_PeerRun] = []
    for spec in request.peers:
        if spec.tls not in contexts:
            try:
                contexts[spec.tls] = build_ssl_context(spec.tls)
            except TlsSetupError as problem:
                contexts[spec.tls] = problem
        context = contexts[spec.tls]
        if isinstance(context, TlsSetupError):
            run = _PeerRun(spec, request, None)
            run.obs.tls_setup_error = context.for_settings(spec.tls)
        else:
            run = _PeerRun(spec, request, context)
        runs.append(run)

    _install_dul_clock()
    router = _DebugLogRouter()
    previous_level = _LOG.level
    previous_handler_level = pynetdicom_config.LOG_HANDLER_LEVEL
    if request.debug:
        _LOG.addHandler(router)
        _LOG.setLevel(logging.DEBUG)
    else:
        # pynetdicom's standard handlers format a full dump of every PDU and DIMSE message
        # even when nobody logs it; without debug that is pure CPU per association.
        pynetdicom_config.LOG_HANDLER_LEVEL = "none"
    stop = threading.Event()
    pool = _Pool(runs, request.parallel, open_limit_share, source)
    results: Dict[int, Dict[str, Any]] = {}
    try:
        # The watchdog first: without it no deadline holds, so no worker may start before it does.
        watchdog = threading.Thread(target=_watchdog, args=(pool, stop), name="dicom-echo-watchdog", daemon=True)
        watchdog.start()
        pool.grow(time.monotonic())
        position = 0
        while True:
            index = pool.next_taken(position)
            if index is None:
                break
            run = runs[index]
            while not run.done.wait(0.5):
                if run.started and time.monotonic() - run.started > _hard_limit(request, run):
                    _abandon(run)
                    break
            results[index] = _result(run)
            if on_result is not None:
                on_result(index, results[index])
            position += 1
    finally:
        # Ending early (an interrupt, an error): the workers finish the peer in hand and take no more.
        pool.closing = True
        stop.set()
        pynetdicom_config.LOG_HANDLER_LEVEL = previous_handler_level
        if request.debug:
            _LOG.removeHandler(router)
            _LOG.setLevel(previous_level)
    return results


def _abandon(run: _PeerRun) -> None:
    """Give up on a worker stuck where no deadline can reach it (for example a hung resolver)."""
    with run.lock:
        if run.obs.timed_out_phase is None:
            run.obs.timed_out_phase = run.phase
            run.obs.timeout_s = run.phase_timeout
        run.timings["total"] = _ms_since(run.started)
        run.abandoned = True
        run.done.set()
