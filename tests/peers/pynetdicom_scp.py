"""Several pynetdicom SCPs in ONE process, one per port, each with a behaviour.

Usage::

    python -m tests.peers.pynetdicom_scp --config peers.json

Works with pynetdicom 3.0.4 (Python >= 3.10) and 2.0.2 (Python 3.9).  Imports nothing
else from this repository.

Config (JSON)::

    {"host": "127.0.0.1",
     "stats_dir": "/tmp/.../stats",         # optional: <name>.count = accepted TCP connections
     "peers": [{"name": "accept", "behaviour": "accept", "port": 21000,
                "ae_title": "ACCEPT_SCP", ...options...}, ...]}

Behaviours (and what DCMTK ``echoscu -aet ECHOSCU -aec <ae_title>`` gets, measured with
DCMTK 3.6.7 against pynetdicom 3.0.4; see tests/system/test_peers_selfcheck.py):

``accept``          Verification SCP, any called/calling AE.  echoscu: exit 0.
``reject-called``   ``require_called_aet = True``: a called AE other than ``ae_title`` gets
                    A-ASSOCIATE-RJ permanent / service-user / reason 7
                    (called-AE-title-not-recognized).  echoscu: exit 1, "Association
                    Rejected", "Reason: Called AE Title Not Recognized".
``reject-calling``  ``require_calling_aet = allowed_calling`` (option, list): another
                    calling AE gets RJ permanent / service-user / reason 3.
                    echoscu: exit 1, "Calling AE Title Not Recognized".
``no-verification`` AE supports only CT Image Storage: association accepted, the
                    Verification context rejected (result 3, abstract syntax not
                    supported).  echoscu: exit 1, "No Acceptable Presentation Contexts"
                    (``-d``: "Context ID: 1 (Abstract Syntax Not Supported)").
``status``          EVT_C_ECHO handler returns option ``status`` (e.g. 0xC000, 0x0122,
                    0xB000; pynetdicom logs a warning for 0xC000 but sends it).  echoscu:
                    exit 0 (!); ``-v`` shows "Received Echo Response (Unknown Status: 0x122)".
``abort-on-echo``   EVT_C_ECHO handler aborts the association (A-ABORT service-user).
                    echoscu: exit 0 (!) with "Peer aborted Association (or never
                    connected)" and no echo response.
``slow``            EVT_C_ECHO handler waits option ``delay`` seconds (default 10) then
                    answers 0x0000.  echoscu ``-td 3``: "Echo Failed: 0006:0207 DIMSE No data
                    available (timeout in non-blocking mode)", exit 70 after ~3 s.  The wait
                    is interrupted at shutdown.
``tls``             like ``accept`` but over TLS: option ``tls`` = {"cert", "key",
                    "ca" (optional), "require_client_cert": bool, "key_password"}.  Any
                    behaviour may carry a ``tls`` option.  echoscu without TLS, or without
                    the required client cert: "Peer aborted Association (or never
                    connected)", exit 1; server cert not trusted / expired: "TLS error:
                    certificate verify failed", exit 1.  echoscu never checks host names.

Other per-peer options: ``host`` (e.g. ``::1``; IPv6 needs pynetdicom >= 3),
``max_associations`` (default 64), ``handshake_timeout`` (TLS, 5 s), ``network_timeout``,
``acse_timeout``, ``dimse_timeout`` (30 s each), ``contexts`` (more presentation contexts to
support: ``[[abstract syntax UID, [transfer syntax UIDs]], ...]``; pynetdicom answers any other
proposed SOP class with result 3 and a supported one offered in none of its transfer syntaxes
with result 4).

Implementation notes (traps):

* ``start_server(block=True)`` + a SIGTERM handler calling ``shutdown()`` deadlocks, so
  servers are made non-blocking (``make_server`` with our own server class, run on our own
  threads) and the main thread waits for SIGTERM/SIGINT or EOF on stdin (parent gone).
* The listen backlog (``request_queue_size``, default 5) is raised to 128, and
  ``maximum_associations`` (default 10) to 64.
* pynetdicom wraps TLS sockets inside ``get_request`` on the single accept thread, with a
  blocking socket: one silent TCP client would freeze the whole TLS server.  Our server
  class does the handshake on the per-connection thread with a timeout instead.
* ``ThreadingMixIn.server_close`` joins all request threads (block_on_close): disabled,
  and shutdown is bounded by a watchdog that calls ``os._exit``.
* Prints exactly one ``READY`` line on stdout once every port listens (``ERROR ...`` on
  failure); logs go to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time

from pynetdicom import AE, evt
from pynetdicom.transport import ThreadedAssociationServer

try:  # UIDs under both pynetdicom 2.x and 3.x
    from pynetdicom.sop_class import Verification, CTImageStorage  # type: ignore
except ImportError:  # pragma: no cover
    from pynetdicom.sop_class import VerificationSOPClass as Verification  # type: ignore
    from pynetdicom.sop_class import CTImageStorage  # type: ignore

LOG = logging.getLogger("peers.pynetdicom_scp")
STOP = threading.Event()
BEHAVIOURS = ("accept", "reject-called", "reject-calling", "no-verification", "status",
              "abort-on-echo", "slow", "tls")


class PeerServer(ThreadedAssociationServer):
    """Association server with a big backlog, connection counting, and TLS handshakes on
    the connection thread (bounded), not on the accept thread."""

    request_queue_size = 128
    daemon_threads = True
    block_on_close = False

    # set after construction by make_peer()
    peer_name = "?"
    tls_context = None  # type: ssl.SSLContext | None
    handshake_timeout = 5.0
    stats_dir = None  # type: str | None
    accepted = 0
    _count_lock = threading.Lock()

    def get_request(self):
        client_socket, address = self.socket.accept()
        with self._count_lock:
            self.accepted += 1
            count = self.accepted
        if self.stats_dir:
            path = os.path.join(self.stats_dir, self.peer_name + ".count")
            tmp = "%s.%d.tmp" % (path, threading.get_ident())
            try:
                with open(tmp, "w") as fh:
                    fh.write(str(count))
                os.replace(tmp, path)
            except OSError:
                LOG.exception("cannot write stats for %s", self.peer_name)
        return client_socket, address

    def process_request_thread(self, request, client_address):
        if self.tls_context is not None:
            try:
                request.settimeout(self.handshake_timeout)
                request = self.tls_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ssl.SSLError, socket.timeout) as exc:
                LOG.info("%s: TLS handshake with %s failed: %r", self.peer_name,
                         client_address, exc)
                try:
                    request.close()
                except OSError:
                    pass
                return
        super().process_request_thread(request, client_address)


def _fast_dul(event):
    """EVT_CONN_OPEN: shorten the DUL polling sleep (1 ms default) for quicker echoes."""
    dul = getattr(event.assoc, "dul", None)
    if dul is not None and hasattr(dul, "_run_loop_delay"):
        dul._run_loop_delay = 0.0001


def _status_handler(status):
    def handler(event):
        return status
    return handler


def _abort_handler(event):
    LOG.info("abort-on-echo: aborting association")
    event.assoc.abort()
    return 0x0000


def _slow_handler(delay):
    def handler(event):
        STOP.wait(delay)
        return 0x0000
    return handler


def _tls_context(opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts["cert"], opts["key"], password=opts.get("key_password"))
    if opts.get("ca"):
        ctx.load_verify_locations(cafile=opts["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED if opts.get("require_client_cert") else ssl.CERT_NONE
    return ctx


def make_peer(host, spec, stats_dir):
    behaviour = spec["behaviour"]
    if behaviour not in BEHAVIOURS:
        raise ValueError("unknown behaviour %r" % behaviour)
    ae_title = spec.get("ae_title", "ANY-SCP")
    ae = AE(ae_title=ae_title)
    ae.maximum_associations = int(spec.get("max_associations", 64))
    ae.network_timeout = float(spec.get("network_timeout", 30))
    ae.acse_timeout = float(spec.get("acse_timeout", 30))
    ae.dimse_timeout = float(spec.get("dimse_timeout", 30))
    ae.require_called_aet = behaviour == "reject-called"
    if behaviour == "reject-calling":
        ae.require_calling_aet = list(spec.get("allowed_calling", ["ECHOSCU"]))

    if behaviour == "no-verification":
        ae.add_supported_context(CTImageStorage)
    else:
        ae.add_supported_context(Verification)
    # "contexts": more SOP classes to support, [abstract syntax UID, [transfer syntax UIDs]] each.
    for abstract_syntax, transfer_syntaxes in spec.get("contexts", ()):
        ae.add_supported_context(abstract_syntax, list(transfer_syntaxes))

    handlers = [(evt.EVT_CONN_OPEN, _fast_dul)]
    if behaviour == "status":
        handlers.append((evt.EVT_C_ECHO, _status_handler(int(spec["status"]))))
    elif behaviour == "abort-on-echo":
        handlers.append((evt.EVT_C_ECHO, _abort_handler))
    elif behaviour == "slow":
        handlers.append((evt.EVT_C_ECHO, _slow_handler(float(spec.get("delay", 10)))))

    host = spec.get("host", host)  # e.g. "::1" (pynetdicom >= 3 only)
    server = ae.make_server((host, int(spec["port"])), ae_title=ae_title,
                            evt_handlers=handlers, server_class=PeerServer)
    server.peer_name = spec["name"]
    server.stats_dir = stats_dir
    server.accepted = 0
    server._count_lock = threading.Lock()
    if spec.get("tls"):
        server.tls_context = _tls_context(spec["tls"])
        server.handshake_timeout = float(spec.get("handshake_timeout", 5))
    ae._servers.append(server)  # so ae.shutdown() finds it
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="AcceptorServer-%s" % spec["name"], daemon=True)
    thread.start()
    return ae, server


def _watch_stdin():
    """EOF on stdin means the parent (pytest) is gone: stop."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    STOP.set()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--watch-stdin", action="store_true",
                        help="exit when stdin reaches EOF (parent died)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    with open(args.config) as fh:
        config = json.load(fh)
    host = config.get("host", "127.0.0.1")
    stats_dir = config.get("stats_dir")
    if stats_dir:
        os.makedirs(stats_dir, exist_ok=True)

    signal.signal(signal.SIGTERM, lambda *a: STOP.set())
    signal.signal(signal.SIGINT, lambda *a: STOP.set())

    started = []
    try:
        for spec in config["peers"]:
            started.append(make_peer(host, spec, stats_dir))
    except Exception as exc:
        print("ERROR %s: %r" % (type(exc).__name__, exc), flush=True)
        LOG.exception("startup failed")
        os._exit(2)

    import pynetdicom
    LOG.warning("pynetdicom %s on Python %s: %d peers listening", pynetdicom.__version__,
                sys.version.split()[0], len(started))
    print("READY", flush=True)
    if args.watch_stdin:
        threading.Thread(target=_watch_stdin, name="stdin-watch", daemon=True).start()

    while not STOP.wait(0.5):
        pass

    # Bounded shutdown: abort associations and stop servers in parallel, then hard exit.
    watchdog = threading.Timer(3.0, lambda: os._exit(0))
    watchdog.daemon = True
    watchdog.start()
    threads = [threading.Thread(target=ae.shutdown, daemon=True) for ae, _server in started]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 2.5
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
