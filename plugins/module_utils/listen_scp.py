# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in Verification SCP for a device that is not installed yet: who reaches it, from where, as whom.

:func:`validate_listen` checks the options and raises :class:`EchoInputError` naming the field;
:func:`run_listener` answers C-ECHO as the device would for at most ``duration`` seconds and returns
every connection it saw. Free of Ansible; pynetdicom is imported only by :func:`run_listener`.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import REJECT_REASONS, REJECT_RESULTS, REJECT_SOURCES
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    MAX_TIMEOUT_S,
    EchoInputError,
    normalize_ae_title,
    type_name,
)

OUTCOMES = ("echoed", "associated", "rejected", "aborted", "no_association")
FAIL_ON = ("missing", "never")
DEFAULT_REJECT = {"result": "permanent", "source": "service-user", "reason": "calling-ae-title-not-recognized"}
# The reason when only the source is given: what that source says of a caller it turns away.
DEFAULT_REASONS = {1: "calling-ae-title-not-recognized", 2: "no-reason-given", 3: "local-limit-exceeded"}
CALLED_AE_REJECT = (1, 1, 7)  # rejected-permanent, service-user, called-AE-title-not-recognized
# Once every expected caller has echoed, callers still associated get this long to release.
RELEASE_GRACE_S = 2.0
MAX_ASSOCIATIONS = 32
MAX_PROPOSED_SHOWN = 10
# How a connection ended, where the outcome depends on it.
IDLE = "idle"
ENDED_BY_CALLER = "aborted or closed by the caller"


@dataclass
class ListenRequest:
    ae_title: str
    port: int
    bind_address: str
    duration: float
    idle_timeout: float
    expect_callers: List[str]
    expect_rejected: List[str]
    allowed_calling_ae_titles: Optional[List[str]]
    allowed_source_addresses: Optional[List[Any]]  # ipaddress networks
    check_called_ae_title: bool
    reject: tuple  # (result, source, reason) codes
    fail_on: str
    stop_file: Optional[str] = None


def _titles(value: Any, where: str) -> Optional[List[str]]:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise EchoInputError("%s must be a list of AE titles, got %s" % (where, type_name(value)))
    titles: List[str] = []
    for index, item in enumerate(value):
        title = normalize_ae_title(item, "%s[%d]" % (where, index))
        if title not in titles:
            titles.append(title)
    return titles


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_S:
        raise EchoInputError("%s must be a number of seconds above 0 and at most %d, got %r" % (where, MAX_TIMEOUT_S, value))
    return float(value)


def _code(table: Mapping[int, str], value: Any, where: str) -> int:
    for code, name in table.items():
        if value == name or (isinstance(value, int) and not isinstance(value, bool) and value == code):
            return code
    raise EchoInputError("%s must be one of %s, got %r" % (where, ", ".join(table.values()), value))


def _reject(value: Any) -> tuple:
    if not isinstance(value, Mapping):
        raise EchoInputError("reject must be a dictionary with result, source and reason, got %s" % type_name(value))
    unknown = sorted(set(value) - set(DEFAULT_REJECT))
    if unknown:
        raise EchoInputError("reject has unknown key(s) %s; valid keys are result, source, reason" % ", ".join(unknown))
    given = {key: item for key, item in value.items() if item is not None}
    merged = dict(DEFAULT_REJECT, **given)
    result = _code(REJECT_RESULTS, merged["result"], "reject.result")
    source = _code(REJECT_SOURCES, merged["source"], "reject.source")
    reason = _code(REJECT_REASONS[source], given.get("reason", DEFAULT_REASONS[source]),
                   "reject.reason (for source %s)" % REJECT_SOURCES[source])
    return result, source, reason


def validate_listen(params: Mapping[str, Any]) -> ListenRequest:
    """The listener's options checked; raises EchoInputError naming the first wrong field."""
    port = params.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise EchoInputError("port must be an integer between 1 and 65535, got %r" % (port,))
    bind_address = params.get("bind_address") or "0.0.0.0"
    try:
        ipaddress.ip_address(bind_address)
    except ValueError:
        raise EchoInputError("bind_address must be an IP address of this host (0.0.0.0 or :: for all), got %r"
                             % (bind_address,)) from None
    networks = None
    if params.get("allowed_source_addresses") is not None:
        value = params["allowed_source_addresses"]
        if not isinstance(value, (list, tuple)):
            raise EchoInputError("allowed_source_addresses must be a list of addresses or networks, got %s"
                                 % type_name(value))
        networks = []
        for index, item in enumerate(value):
            try:
                networks.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                raise EchoInputError("allowed_source_addresses[%d] must be an IP address or a network such as "
                                     "10.1.2.0/24, got %r" % (index, item)) from None
    expect_callers = _titles(params.get("expect_callers"), "expect_callers") or []
    expect_rejected = _titles(params.get("expect_rejected"), "expect_rejected") or []
    both = sorted(set(expect_callers) & set(expect_rejected))
    if both:
        raise EchoInputError("expect_callers and expect_rejected both list %s: a caller is either accepted or "
                             "turned away" % ", ".join(both))
    fail_on = params.get("fail_on") or "missing"
    if fail_on not in FAIL_ON:
        raise EchoInputError("fail_on must be one of %s, got %r" % (", ".join(FAIL_ON), fail_on))
    return ListenRequest(
        ae_title=normalize_ae_title(params.get("ae_title"), "ae_title"),
        port=port,
        bind_address=bind_address,
        duration=_seconds(params.get("duration", 300), "duration"),
        idle_timeout=_seconds(params.get("idle_timeout", 10), "idle_timeout"),
        expect_callers=expect_callers,
        expect_rejected=expect_rejected,
        allowed_calling_ae_titles=_titles(params.get("allowed_calling_ae_titles"), "allowed_calling_ae_titles"),
        allowed_source_addresses=networks,
        check_called_ae_title=params.get("check_called_ae_title", True) is not False,
        reject=_reject(params.get("reject") or {}),
        fail_on=fail_on,
        stop_file=_stop_file(params.get("stop_file")),
    )


def _stop_file(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not os.path.isabs(value):
        raise EchoInputError("stop_file must be an absolute path on this host, got %r" % (value,))
    if os.path.exists(value):
        raise EchoInputError("stop_file %s exists already: the listener would stop at once" % value)
    if not os.path.isdir(os.path.dirname(value)):
        raise EchoInputError("stop_file %s: its directory does not exist" % value)
    return value


def bind_problem(error: OSError, request: ListenRequest) -> str:
    """One line naming what keeps the listener from binding, and the fix."""
    where = "%s port %d" % (request.bind_address, request.port)
    if error.errno == errno.EADDRINUSE:
        return "%s is already in use on this host (another DICOM listener, or the device itself?): stop it or " \
               "choose another port" % where
    if error.errno == errno.EACCES:
        return "%s needs privileges: ports below 1024 need root or CAP_NET_BIND_SERVICE (become: true), or use a " \
               "port of 1024 or above" % where
    if error.errno == errno.EADDRNOTAVAIL:
        return "bind_address %s is not an address of this host: add the device's address to an interface of " \
               "this host first, or listen on one it has" % request.bind_address
    return "cannot listen on %s: %s" % (where, error.strerror or error)


def check_bind(request: ListenRequest) -> None:
    """Bind (without listening) as the listener will, to report a port or address problem early."""
    family = socket.AF_INET6 if ":" in request.bind_address else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As pynetdicom's server does: a port still in TIME_WAIT is free for a listener.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((request.bind_address, request.port))
    finally:
        probe.close()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reject_record(codes: Sequence[int], why: str) -> Dict[str, Any]:
    result, source, reason = codes
    return {"result": REJECT_RESULTS.get(result, str(result)), "source": REJECT_SOURCES.get(source, str(source)),
            "reason": REJECT_REASONS.get(source, {}).get(reason, str(reason)), "why": why}


@dataclass
class _Connection:
    """What the listener saw of one TCP connection."""

    source_address: str
    source_port: int
    opened: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=_now)
    bytes_received: int = 0
    calling_ae_title: Optional[str] = None
    called_ae_title: Optional[str] = None
    implementation_class_uid: Optional[str] = None
    implementation_version_name: Optional[str] = None
    proposed: List[str] = field(default_factory=list)
    allowed: Optional[bool] = None
    reject: Optional[Dict[str, Any]] = None
    accepted: bool = False
    verification_accepted: bool = False
    echoes: int = 0
    ended: Optional[str] = None
    ended_at: Optional[str] = None
    closed: Optional[float] = None

    def end(self, how: str) -> None:
        if self.ended is None:
            self.ended = how


def _sop_name(uid: Any) -> str:
    name = getattr(uid, "name", None)
    keyword = getattr(uid, "keyword", None)
    return str(keyword or name or uid)


def _describe(conn: _Connection, idle_timeout: float) -> Dict[str, Any]:
    caller = "%s:%d" % (conn.source_address, conn.source_port)
    if conn.reject is not None:
        outcome = "rejected"
        message = "%s as %s calling %s: rejected (%s, %s, %s): %s" % (
            caller, conn.calling_ae_title, conn.called_ae_title, conn.reject["result"], conn.reject["source"],
            conn.reject["reason"], conn.reject["why"])
    elif conn.calling_ae_title is None:
        outcome = "no_association"
        if conn.ended == IDLE:
            message = "%s connected and sent no A-ASSOCIATE-RQ within %g s: closed by the listener" % (caller, idle_timeout)
        elif conn.bytes_received:
            message = "%s connected and sent %d byte(s) that were no A-ASSOCIATE-RQ: connection ended" % (
                caller, conn.bytes_received)
        else:
            message = "%s connected and closed without an A-ASSOCIATE-RQ (a port check, or a client that gave up)" % caller
    elif conn.echoes:
        outcome = "echoed"
        message = "%s as %s calling %s: %d C-ECHO answered with success; %s" % (
            caller, conn.calling_ae_title, conn.called_ae_title, conn.echoes, conn.ended or "connection ended")
    elif conn.accepted and conn.ended == ENDED_BY_CALLER:
        outcome = "aborted"
        message = "%s as %s calling %s: association accepted, then aborted by the caller before any C-ECHO" % (
            caller, conn.calling_ae_title, conn.called_ae_title)
    else:
        outcome = "associated" if conn.accepted else "aborted"
        offered = ", ".join(conn.proposed[:MAX_PROPOSED_SHOWN]) + (" ..." if len(conn.proposed) > MAX_PROPOSED_SHOWN else "")
        message = "%s as %s calling %s: %s, no C-ECHO%s; %s" % (
            caller, conn.calling_ae_title, conn.called_ae_title,
            "association accepted" if conn.accepted else "association not completed",
            "" if conn.verification_accepted else " (it proposed %s; only Verification is offered here)" % (offered or "nothing"),
            conn.ended or "connection ended")
    return {
        "started_at": conn.started_at,
        "ended_at": conn.ended_at,
        "duration_ms": round(((conn.closed or time.monotonic()) - conn.opened) * 1000.0, 3),
        "source_address": conn.source_address,
        "source_port": conn.source_port,
        "calling_ae_title": conn.calling_ae_title,
        "called_ae_title": conn.called_ae_title,
        "caller_implementation_class_uid": conn.implementation_class_uid,
        "caller_implementation_version_name": conn.implementation_version_name,
        "proposed": conn.proposed,
        "allowed": conn.allowed,
        "outcome": outcome,
        "echoes": conn.echoes,
        "reject": conn.reject,
        "ended": conn.ended,
        "message": message,
    }


class _Listener:
    """pynetdicom's event handlers, turning its events into one record per TCP connection."""

    def __init__(self, request: ListenRequest) -> None:
        self.request = request
        self.lock = threading.Lock()
        # Keyed by id(); holding each association keeps its id from being reused by a later one.
        self.connections: Dict[int, Tuple[Any, _Connection]] = {}
        self.order: List[_Connection] = []
        self.echoed_callers: set = set()
        self.rejected_callers: set = set()
        self.all_expected_seen = threading.Event()

    def _conn(self, event: Any) -> _Connection:
        return self.record(event.assoc, getattr(event, "address", None))

    def record(self, assoc: Any, address: Optional[Sequence[Any]] = None) -> _Connection:
        """The record of ``assoc``'s connection (made at its first event); call with the lock held."""
        known = self.connections.get(id(assoc))
        if known is not None:
            return known[1]
        address = address or (assoc.requestor.address, assoc.requestor.port)
        conn = _Connection(str(address[0]), int(address[1]))
        self.connections[id(assoc)] = (assoc, conn)
        self.order.append(conn)
        return conn

    def on_open(self, event: Any) -> None:
        with self.lock:
            self._conn(event)

    def on_data(self, event: Any) -> None:
        with self.lock:
            self._conn(event).bytes_received += len(event.data)

    def decide(self, conn: _Connection) -> Optional[tuple]:
        """The A-ASSOCIATE-RJ codes for this caller, or None to go on as the device would accept it."""
        request = self.request
        if request.check_called_ae_title and conn.called_ae_title != request.ae_title:
            conn.reject = _reject_record(CALLED_AE_REJECT, "called AE title %s is not %s" % (
                conn.called_ae_title, request.ae_title))
            return CALLED_AE_REJECT
        if request.allowed_calling_ae_titles is not None and conn.calling_ae_title not in request.allowed_calling_ae_titles:
            conn.reject = _reject_record(request.reject, "calling AE title %s is not in allowed_calling_ae_titles"
                                         % conn.calling_ae_title)
            return request.reject
        if request.allowed_source_addresses is not None:
            try:
                address = ipaddress.ip_address(conn.source_address.split("%")[0])
                if address.version == 6 and address.ipv4_mapped:
                    address = address.ipv4_mapped
            except ValueError:
                address = None
            if address is None or not any(address in network for network in request.allowed_source_addresses):
                conn.reject = _reject_record(request.reject, "source address %s is not in allowed_source_addresses"
                                             % conn.source_address)
                return request.reject
        return None

    def on_requested(self, event: Any) -> None:
        requestor = event.assoc.requestor
        primitive = requestor.primitive
        with self.lock:
            conn = self._conn(event)
            conn.calling_ae_title = str(primitive.calling_ae_title).strip(" ")
            conn.called_ae_title = str(primitive.called_ae_title).strip(" ")
            conn.implementation_class_uid = str(getattr(requestor, "implementation_class_uid", None) or "") or None
            conn.implementation_version_name = str(getattr(requestor, "implementation_version_name", None) or "") or None
            for context in primitive.presentation_context_definition_list or []:
                name = _sop_name(context.abstract_syntax)
                if name not in conn.proposed:
                    conn.proposed.append(name)
            codes = self.decide(conn)
            conn.allowed = codes is None
            if codes is not None:
                self.rejected_callers.add(conn.calling_ae_title)
                self._check_all_seen()
        if codes is not None:
            # pynetdicom's documented way for an EVT_REQUESTED handler to turn the caller away (it then skips
            # its own negotiation), ended as pynetdicom ends its own rejections: kill() waits until the
            # A-ASSOCIATE-RJ is out and the caller has closed (or the idle timeout).
            event.assoc.acse.send_reject(*codes)
            event.assoc.kill()

    def on_accepted(self, event: Any) -> None:
        with self.lock:
            conn = self._conn(event)
            conn.accepted = True
            conn.verification_accepted = any(
                str(context.abstract_syntax) == "1.2.840.10008.1.1" for context in event.assoc.accepted_contexts)

    def on_rejected(self, event: Any) -> None:
        # Only pynetdicom's own rejections get here (too many associations at once).
        primitive = event.assoc.acceptor.primitive
        with self.lock:
            conn = self._conn(event)
            if conn.reject is None and primitive is not None:
                codes = (primitive.result, primitive.result_source, primitive.diagnostic)
                conn.reject = _reject_record(codes, "more than %d associations at once" % MAX_ASSOCIATIONS)
                conn.allowed = False

    def on_echo(self, event: Any) -> int:
        with self.lock:
            conn = self._conn(event)
            conn.echoes += 1
            self.echoed_callers.add(conn.calling_ae_title)
            self._check_all_seen()
        return 0x0000

    def _check_all_seen(self) -> None:
        request = self.request
        if (request.expect_callers or request.expect_rejected) and set(request.expect_callers) <= self.echoed_callers \
                and set(request.expect_rejected) <= self.rejected_callers:
            self.all_expected_seen.set()

    def on_released(self, event: Any) -> None:
        with self.lock:
            self._conn(event).end("released")

    def on_aborted(self, event: Any) -> None:
        with self.lock:
            self._conn(event).end(ENDED_BY_CALLER)

    def on_close(self, event: Any) -> None:
        with self.lock:
            conn = self._conn(event)
            conn.closed = time.monotonic()
            conn.ended_at = _now()
            if conn.calling_ae_title is None and conn.closed - conn.opened >= self.request.idle_timeout - 0.05:
                conn.end(IDLE)
            conn.end("connection closed")

    def handlers(self, evt: Any) -> List[tuple]:
        return [(evt.EVT_CONN_OPEN, self.on_open), (evt.EVT_DATA_RECV, self.on_data),
                (evt.EVT_REQUESTED, self.on_requested), (evt.EVT_ACCEPTED, self.on_accepted),
                (evt.EVT_REJECTED, self.on_rejected), (evt.EVT_C_ECHO, self.on_echo),
                (evt.EVT_RELEASED, self.on_released), (evt.EVT_ABORTED, self.on_aborted),
                (evt.EVT_CONN_CLOSE, self.on_close)]


def _wait(stop: Callable[[], bool], until: float) -> None:
    # Short waits: the main thread must stay free for SIGTERM/SIGINT handlers.
    while not stop() and time.monotonic() < until:
        time.sleep(min(0.1, max(0.0, until - time.monotonic())))


def run_listener(request: ListenRequest, stop_requested: Callable[[], bool] = lambda: False) -> Dict[str, Any]:
    """Answer C-ECHO as ``request.ae_title`` on ``bind_address:port`` until ``duration`` is over, every
    expected caller has been seen as expected, ``stop_file`` exists or ``stop_requested()``; return what was
    seen. Raises OSError when the port cannot be bound (see :func:`bind_problem`)."""
    from pynetdicom import AE, evt  # pylint: disable=import-outside-toplevel
    from ansible_collections.dicom.network.plugins.module_utils._pynetdicom_compat import (  # pylint: disable=import-outside-toplevel
        pynetdicom_logging,
    )
    from ansible_collections.dicom.network.plugins.module_utils.echo_engine import (  # pylint: disable=import-outside-toplevel
        IMPLEMENTATION_CLASS_UID,
        IMPLEMENTATION_VERSION_NAME,
    )

    logging.getLogger("pynetdicom").addHandler(logging.NullHandler())
    restore_logging = pynetdicom_logging(False)
    # pynetdicom 2.0's DUL thread can die sending an A-ABORT on a socket its caller already closed (seen
    # with DCMTK storescu): the connection is over either way, and a module must not print a traceback.
    previous_hook, threading.excepthook = threading.excepthook, lambda args: None
    listener = _Listener(request)
    ae = AE(ae_title=request.ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    ae.add_supported_context("1.2.840.10008.1.1")
    # The handler decides, so that every rejection says why.
    ae.require_called_aet = False
    ae.require_calling_aet = []
    ae.maximum_associations = MAX_ASSOCIATIONS
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = request.idle_timeout
    started = time.monotonic()
    started_at = _now()
    try:
        server = ae.start_server((request.bind_address, request.port), block=False, evt_handlers=listener.handlers(evt))
    except OSError:
        restore_logging()
        threading.excepthook = previous_hook
        raise
    stopped_because = "duration"
    try:
        deadline = started + request.duration
        told = (lambda: os.path.exists(request.stop_file)) if request.stop_file else (lambda: False)
        _wait(lambda: stop_requested() or told() or listener.all_expected_seen.is_set(), deadline)
        if stop_requested():
            stopped_because = "stopped"
        elif told():
            stopped_because = "stop file"
        elif listener.all_expected_seen.is_set():
            stopped_because = "every expected caller was seen"
            _wait(lambda: stop_requested() or not server.active_associations, min(deadline, time.monotonic() + RELEASE_GRACE_S))
    finally:
        server.shutdown()
        for assoc in list(server.active_associations):
            with listener.lock:
                listener.record(assoc).end("aborted by the listener (its time was up)")
            assoc.abort()
        restore_logging()
        threading.excepthook = previous_hook
        if request.stop_file:
            # Gone once the port is free: what a playbook can wait for before it collects the result.
            try:
                os.remove(request.stop_file)
            except OSError:
                pass
    ended_at = _now()
    with listener.lock:
        associations = [_describe(conn, request.idle_timeout) for conn in listener.order]
    return _result(request, associations, {
        "ae_title": request.ae_title, "bind_address": request.bind_address, "port": request.port,
        "started_at": started_at, "ended_at": ended_at, "listened_s": round(time.monotonic() - started, 3),
        "stopped_because": stopped_because})


def _result(request: ListenRequest, associations: List[Dict[str, Any]], listener: Dict[str, Any]) -> Dict[str, Any]:
    callers: Dict[str, Dict[str, Any]] = {}
    for item in associations:
        title = item["calling_ae_title"]
        if title is None:
            continue
        expected = "echo" if title in request.expect_callers else "rejected" if title in request.expect_rejected else None
        caller = callers.setdefault(title, {"ae_title": title, "expected": expected, "echoed": False,
                                            "rejected": False, "associations": 0, "echoes": 0, "source_addresses": []})
        caller["associations"] += 1
        caller["echoes"] += item["echoes"]
        caller["echoed"] = caller["echoed"] or item["outcome"] == "echoed"
        caller["rejected"] = caller["rejected"] or item["outcome"] == "rejected"
        if item["source_address"] not in caller["source_addresses"]:
            caller["source_addresses"].append(item["source_address"])
    missing = [title for title in request.expect_callers if not (title in callers and callers[title]["echoed"])] + \
        [title for title in request.expect_rejected if not (title in callers and callers[title]["rejected"])]
    counts: Dict[str, int] = {}
    for item in associations:
        counts[item["outcome"]] = counts.get(item["outcome"], 0) + 1
    seen = ", ".join("%d %s" % (counts[outcome], outcome) for outcome in OUTCOMES if outcome in counts) or "nobody"
    msg = "listened %.1f s on %s port %d as %s: %d connection(s) (%s)" % (
        listener["listened_s"], request.bind_address, request.port, request.ae_title, len(associations), seen)
    if request.expect_callers or request.expect_rejected:
        msg += "; %s" % ("every expected caller was seen" if not missing else
                         "expected caller(s) never seen as expected: %s" % ", ".join(missing))
    return {"listener": listener, "associations": associations, "callers": sorted(callers.values(), key=lambda c: c["ae_title"]),
            "missing_callers": missing, "msg": msg}
