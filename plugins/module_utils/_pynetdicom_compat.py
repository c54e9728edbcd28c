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

import logging
import os
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
    from pynetdicom import AE, evt
    from pynetdicom.transport import AssociationSocket
except ImportError:  # reported to the user by _pynetdicom_dep.ensure_pynetdicom()
    pynetdicom = None
    AE = AssociationSocket = object
    evt = None

TESTED = "2.0, 3.0"
VERSION = _pynetdicom_dep.PYNETDICOM_VERSION
SPEED_TRICKS = os.environ.get("DICOM_NETWORK_STOCK_PYNETDICOM") != "1"


class UnsupportedPynetdicom(Exception):
    """This pynetdicom lacks what the transport instrumentation needs."""


def check_supported() -> None:
    """Fail before any traffic when the correctness hooks cannot work with this pynetdicom."""
    needs = [(AE, "_create_socket"), (AssociationSocket, "connect"), (AssociationSocket, "recv")]
    missing = [getattr(owner, "__name__", "?") + "." + name for owner, name in needs if not hasattr(owner, name)]
    if missing:
        raise UnsupportedPynetdicom("unsupported pynetdicom %s (it has no %s); tested: %s" % (
            VERSION, ", ".join(missing), TESTED))


class HookedSocket(AssociationSocket):  # type: ignore[misc,valid-type]
    """pynetdicom's transport with its connect and reads going through the engine's ``hooks``.

    pynetdicom's connect() only logs why a connection failed, and does TCP and TLS in one step:
    ``hooks.connect()`` does each step itself, so each failure keeps its exception and its step.
    ``hooks.received()`` sees every read and may raise OSError to end the association (taken as a
    closed transport) instead of reading what a hostile peer announces."""

    hooks: Any = None

    def connect(self, primitive) -> None:
        address = getattr(getattr(primitive, "address_info", None), "as_tuple", None) or primitive.address
        try:
            family = socket.AF_INET6 if ":" in str(address[0]) else socket.AF_INET
            if self.socket is None or self.socket.family != family:
                # pynetdicom 2.0 makes IPv4 sockets only (a bind address, if any, is of the peer's family).
                if self.socket is not None:
                    self.socket.close()
                self.socket = socket.socket(family, socket.SOCK_STREAM)
            self.socket = self.hooks.connect(self.socket, address, self.tls_args)
            # pynetdicom 3 reports the local end of the connection as the requestor's address.
            requestor = self.assoc.requestor
            if hasattr(requestor, "address_info"):
                requestor.address_info = type(requestor.address_info).from_tuple(self.socket.getsockname())
            self._is_connected = True
            evt.trigger(self.assoc, evt.EVT_CONN_OPEN, {"address": address})
            primitive.result = "Evt2"  # connected
        except (OSError, ValueError) as exc:
            self.hooks.connect_failed(exc)
            if self.socket is not None:
                try:
                    self.socket.close()
                except OSError:
                    pass
                self.socket = None
            primitive.result = "Evt17"  # closed
        finally:
            self.provider_queue.put(primitive)
            if hasattr(self, "_ready"):  # pynetdicom 3 waits on it
                self._ready.set()

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
            _prompt_end(assoc)
        return sock


def end_association(assoc) -> None:
    """Close the socket: pynetdicom skips close() when shutdown() fails (the peer already gone)."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _prompt_end(assoc) -> None:
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


def guard_reactor(assoc) -> None:
    """pynetdicom's reactor may take the C-ECHO-RSP off the DIMSE queue while send_c_echo() waits
    for it (its pause flag is stale right after the previous send): put such a message back. Left
    out where the names are missing."""
    serve = getattr(assoc, "_serve_request", None)
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    if serve is None or checkpoint is None:
        return

    def serve_or_requeue(msg, context_id):
        if not checkpoint.is_set():
            assoc.dimse.msg_queue.put((context_id, msg))
            return
        serve(msg, context_id)
    assoc._serve_request = serve_or_requeue


class _RunLogRouter(logging.Handler):
    """pynetdicom's log lines (the echoscu -d style dump) to the debug lines of the run whose thread logged them."""

    def emit(self, record: logging.LogRecord) -> None:
        run = getattr(threading.current_thread(), "_dn_run", None)
        if run is not None:
            try:
                run.debug(record.getMessage())
            except Exception:  # pylint: disable=broad-except  # a log line must never break an echo
                pass


def pynetdicom_logging(debug: bool) -> Callable[[], None]:
    """With ``debug``, pynetdicom's log lines go to each run's debug lines. Without, its standard event
    handlers are off (its documented LOG_HANDLER_LEVEL option): they run before ours, format every PDU
    even when nobody logs it, and one that raises on a malformed PDU (an A-ASSOCIATE-AC for a context
    never proposed) keeps ours from seeing it. Returns the function that restores pynetdicom's logging."""
    logger, config = logging.getLogger("pynetdicom"), getattr(pynetdicom, "_config", None)
    if debug:
        router, level = _RunLogRouter(), logger.level
        logger.addHandler(router)
        logger.setLevel(logging.DEBUG)

        def restore() -> None:
            logger.removeHandler(router)
            logger.setLevel(level)
        return restore
    if not hasattr(config, "LOG_HANDLER_LEVEL"):
        return lambda: None
    previous, config.LOG_HANDLER_LEVEL = config.LOG_HANDLER_LEVEL, "none"
    return lambda: setattr(config, "LOG_HANDLER_LEVEL", previous)
