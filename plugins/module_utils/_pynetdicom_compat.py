# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every use of a pynetdicom internal by the echo engine, one function per trick.

Two kinds. *Correctness hooks* (the instrumented transport) have no stock equivalent: the engine
cannot attribute a failure to TCP, TLS or a malformed PDU without them, so on a pynetdicom that
lacks what they need, ``check_supported()`` stops the module before any traffic. *Speed tricks*
check that what they touch exists and otherwise leave pynetdicom's stock behaviour in place: a
newer pynetdicom makes the engine slower, never wrong. DICOM_NETWORK_STOCK_PYNETDICOM=1 (for the
tests only) turns every speed trick off, so that CI proves the fallback.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
import time
import types
from typing import Any, Callable

# First, so that pynetdicom is imported the module's way (without numpy and requests).
from ansible_collections.dicom.network.plugins.module_utils import _pynetdicom_dep

try:
    import pynetdicom
    from pynetdicom import AE, dul as pynetdicom_dul, evt
    from pynetdicom.transport import AssociationSocket
except ImportError:  # reported to the user by _pynetdicom_dep.ensure_pynetdicom()
    pynetdicom = pynetdicom_dul = None
    AE = AssociationSocket = object
    evt = None

TESTED = "2.0, 3.0"
SPEED_TRICKS = os.environ.get("DICOM_NETWORK_STOCK_PYNETDICOM") != "1"


class UnsupportedPynetdicom(Exception):
    """This pynetdicom lacks what the transport instrumentation needs."""


def check_supported() -> None:
    """Fail before any traffic when the correctness hooks cannot work with this pynetdicom."""
    needs = [(AE, "_create_socket"), (AssociationSocket, "_create_socket"), (AssociationSocket, "connect"),
             (AssociationSocket, "recv")]
    missing = [getattr(owner, "__name__", "?") + "." + name for owner, name in needs if not hasattr(owner, name)]
    if missing:
        raise UnsupportedPynetdicom("unsupported pynetdicom %s (it has no %s); tested: %s" % (
            _pynetdicom_dep.PYNETDICOM_VERSION, ", ".join(missing), TESTED))


class HookedSocket(AssociationSocket):  # type: ignore[misc,valid-type]
    """pynetdicom's transport whose connect and reads go through the engine's ``hooks``.

    pynetdicom's connect() only logs why a connection failed, and does TCP and TLS in one step;
    ``hooks.connect(raw, address, tls_args)`` connects (and wraps) the socket itself and returns
    it, so each failure keeps its exception and its step. Every read is shown to
    ``hooks.received(data, nr_bytes)``, which may raise OSError to end the association (pynetdicom
    then takes the transport as closed) instead of reading what a hostile peer announces.
    """

    hooks: Any = None

    def connect(self, primitive) -> None:
        address = getattr(getattr(primitive, "address_info", None), "as_tuple", None) or primitive.address
        try:
            if self.socket is None:
                self.socket = self._create_socket()
            self.socket = self.hooks.connect(self.socket, address, self.tls_args)
            # pynetdicom 3 reports the local end of the connection as the requestor's address.
            requestor = self.assoc.requestor
            if hasattr(requestor, "address_info"):
                requestor.address_info = type(requestor.address_info).from_tuple(self.socket.getsockname())
            self._is_connected = True
            evt.trigger(self.assoc, evt.EVT_CONN_OPEN, {"address": address})
            primitive.result = "Evt2"
        except (OSError, ValueError) as exc:
            self.hooks.connect_failed(exc)
            if self.socket is not None:
                try:
                    self.socket.close()
                except OSError:
                    pass
                self.socket = None
            primitive.result = "Evt17"
        finally:
            ready = getattr(self, "_ready", None)  # pynetdicom 3 waits on it
            if ready is not None:
                ready.set()
        self.provider_queue.put(primitive)

    def recv(self, nr_bytes: int) -> bytearray:
        try:
            data = super().recv(nr_bytes)
        except ssl.SSLError as exc:
            self.hooks.tls_failed(exc)
            raise
        return self.hooks.received(data, nr_bytes)


class HookedAE(AE):  # type: ignore[misc,valid-type]
    """An AE whose associations use HookedSocket with the ``hooks`` given, and the speed tricks."""

    def __init__(self, hooks: Any, **kwargs):
        super().__init__(**kwargs)
        self._dn_hooks = hooks

    def _create_socket(self, assoc, address, tls_args):
        sock = HookedSocket(assoc, address=address)
        sock.tls_args = tls_args
        sock.hooks = self._dn_hooks
        assoc.dul._dn_run = self._dn_hooks  # for the engine's debug log router
        if SPEED_TRICKS:
            _prompt_abort(assoc)
            _no_requestor_reactor(assoc)
            _event_driven_dul(assoc.dul)
        return sock


def end_association(assoc) -> None:
    """Free what an association holds once it has ended."""
    # pynetdicom skips close() when shutdown() fails (peer already gone), leaving the descriptor
    # to the garbage collector.
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    for end in (sock,) + getattr(assoc.dul, "_dn_waker", ()):
        try:
            if end is not None:
                end.close()
        except OSError:
            pass


class _DulTime:
    """pynetdicom.dul's ``time``: in a DUL thread given a waker by _event_driven_dul(), sleep()
    waits until the association's socket has data or the waker is poked (at most 20 ms, so that
    the ARTIM timer is still seen); every other thread sleeps as before."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        thread = threading.current_thread()
        waker = getattr(thread, "_dn_waker", None)
        if waker is None:
            time.sleep(seconds)
            return
        sock = getattr(thread.socket, "socket", None)
        try:
            ready = select.select([waker[0]] + ([sock] if sock is not None else []), [], [], 0.02)[0]
            if waker[0] in ready:
                waker[0].recv(4096)
        except (OSError, ValueError):  # closed under us: pynetdicom's own checks see it next
            time.sleep(seconds)


def _event_driven_dul(dul) -> None:
    """The DUL thread waits on its socket and a waker instead of polling every 1 ms: with dozens
    of associations pynetdicom's polling was thousands of wake-ups a second, most of the engine's
    CPU, and each PDU waited up to a poll in each direction. Measured on scenario 1 (500 peers,
    parallel 16, benchmarks/README.md): engine wall and CPU without it in the A/B table there."""
    if not all(hasattr(dul, name) for name in ("send_pdu", "stop_dul", "_kill_thread", "state_machine")) \
            or not hasattr(pynetdicom_dul, "time"):
        return
    if not isinstance(pynetdicom_dul.time, _DulTime):
        pynetdicom_dul.time = _DulTime()
    waker = dul._dn_waker = socket.socketpair()
    for end in waker:
        end.setblocking(False)
    send_pdu = dul.send_pdu

    def wake() -> None:
        try:
            waker[1].send(b"\0")
        except OSError:  # buffer full (already awake) or closed (association over)
            pass

    def send_and_wake(primitive) -> None:
        send_pdu(primitive)
        wake()

    def stop_dul() -> bool:
        if dul.state_machine.current_state != "Sta1":
            return False
        dul._kill_thread = True
        wake()
        if threading.current_thread() is not dul:
            dul.join(0.2)
        return True
    dul.send_pdu, dul.stop_dul = send_and_wake, stop_dul


def _prompt_abort(assoc) -> None:
    """pynetdicom's abort() and kill() without their fixed sleeps (0.1 s after an abort, 10 ms
    polls while the DUL stops). pynetdicom aborts every association whose connection fails, so
    each refused port held its thread 0.1 s more: 500 peers on a closed port, parallel 16, took
    3.31 s against 0.37 s (benchmarks/README.md, scenario 2). The same steps otherwise."""
    names = ("_reactor_checkpoint", "_is_paused", "_sent_abort", "acse", "dul")
    if not all(hasattr(assoc, name) for name in names) or not hasattr(assoc.dul, "stop_dul"):
        return

    def kill(self) -> None:
        self._reactor_checkpoint.set()
        self._kill = True
        self.is_established = False
        self._is_paused = True
        while self.dul.is_alive() and not self.dul.stop_dul():
            time.sleep(0.0005)

    def abort(self, block: bool = True) -> None:
        if self._sent_abort or self.is_released:
            return
        self._sent_abort = True  # before waking the reactor, as pynetdicom does: one A-ABORT only
        self._reactor_checkpoint.set()
        self.acse.send_abort(0x00)
        evt.trigger(self, evt.EVT_ABORTED, {})
        if block:
            self.kill()
            try:
                self.dul.socket._shutdown_socket()
            except Exception:  # pylint: disable=broad-except  # as pynetdicom: the transport may be gone
                pass

    assoc.kill = types.MethodType(kill, assoc)
    # pynetdicom 3's ACSE reaches abort() through _abort_blocking.
    assoc.abort = assoc._abort_blocking = types.MethodType(abort, assoc)


def _no_requestor_reactor(assoc) -> None:
    """No Association reactor thread: it only serves requests *from* the peer, which an echo SCU
    never gets, and polls every 1 ms while send_c_echo() spins until it pauses."""
    if hasattr(assoc, "_run_reactor") and hasattr(assoc, "_is_paused"):
        assoc._run_reactor = types.MethodType(lambda self: setattr(self, "_is_paused", True), assoc)
        assoc._is_paused = True
        assoc._dn_reactorless = True


def still_established(assoc) -> bool:
    """Whether the association can carry another request, ending it if not.

    Without the reactor nobody else notices a peer's abort or close between two requests; the
    DUL's state machine knows (Sta6: established).
    """
    if not assoc.is_established:
        return False
    if not getattr(assoc, "_dn_reactorless", False):
        return True
    state = assoc.dul.state_machine.current_state
    if state == "Sta6":
        return True
    assoc.is_established = False
    if state == "Sta1":
        assoc.is_aborted = True
        assoc.kill()
    else:
        assoc.abort()  # for example Sta8 after the peer's own A-RELEASE-RQ
    return False


def guard_reactor(assoc) -> None:
    """With pynetdicom's reactor running, it may take the C-ECHO-RSP off the DIMSE queue while
    send_c_echo() waits for it (its pause flag is stale right after the previous send): put such
    a message back. Not needed without the reactor, and left out where the names are missing."""
    serve = getattr(assoc, "_serve_request", None)
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if getattr(assoc, "_dn_reactorless", False) or serve is None or checkpoint is None:
        return

    def serve_or_requeue(msg, context_id):
        if not checkpoint.is_set():
            assoc.dimse.msg_queue.put((context_id, msg))
            return
        serve(msg, context_id)
    assoc._serve_request = serve_or_requeue


def quiet_standard_logging(debug: bool) -> Callable[[], None]:
    """Switch off pynetdicom's standard event handlers (its documented LOG_HANDLER_LEVEL option)
    unless ``debug`` wants their dump. They run before ours, format every PDU even when nobody logs
    it, and one that raises on a malformed PDU (an A-ASSOCIATE-AC for a context never proposed)
    keeps ours from seeing it. Returns the function that restores them."""
    config = getattr(pynetdicom, "_config", None)
    if debug or not hasattr(config, "LOG_HANDLER_LEVEL"):
        return lambda: None
    previous = config.LOG_HANDLER_LEVEL
    config.LOG_HANDLER_LEVEL = "none"

    def restore() -> None:
        config.LOG_HANDLER_LEVEL = previous
    return restore

