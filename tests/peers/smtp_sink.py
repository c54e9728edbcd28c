"""A small SMTP server that keeps what it receives, for the e-mail tests of the echo_audit role.

``SmtpSink(tls=(cert, key), users={"name": "password"})`` listens on 127.0.0.1 (a free port,
``sink.port``) in threads of the pytest process and speaks just enough ESMTP for Python's smtplib
(which community.general.mail uses): EHLO/HELO, STARTTLS (when given a certificate), AUTH PLAIN
(when given users; offered only after STARTTLS when there is a certificate), MAIL, RCPT, DATA with
dot-unstuffing, RSET, NOOP, QUIT. Every message is kept in ``sink.messages`` with the envelope,
whether the session was under TLS and which user logged in; ``sink.logins`` keeps every AUTH
attempt. Every wait is bounded and ``stop()`` closes every socket.
"""
from __future__ import annotations

import base64
import binascii
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Dict, List, Optional, Tuple

LOOPBACK = "127.0.0.1"
_MAX_LINE = 65536
_MAX_DATA = 20 * 1024 * 1024
_TIMEOUT = 15.0


@dataclass
class Received:
    """One message as the sink received it."""

    mail_from: str
    rcpt_to: List[str]
    data: bytes
    tls: bool
    user: Optional[str]

    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)

    def text(self) -> str:
        """The first text/plain part, decoded."""
        part = self.message().get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


@dataclass
class _State:
    tls: bool = False
    user: Optional[str] = None
    mail_from: Optional[str] = None
    rcpt_to: List[str] = field(default_factory=list)


class _Handler(socketserver.StreamRequestHandler):
    timeout = _TIMEOUT
    server: "_Server"

    def _send(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")
        self.wfile.flush()

    def _read(self) -> Optional[bytes]:
        line = self.rfile.readline(_MAX_LINE)
        return line if line else None

    def _start_tls(self) -> None:
        self.connection = self.server.sink.tls_context.wrap_socket(self.request, server_side=True)
        self.request = self.connection
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb")

    def _ehlo_lines(self, state: _State) -> List[str]:
        sink = self.server.sink
        lines = ["sink.test"]
        if sink.tls_context is not None and not state.tls:
            lines.append("STARTTLS")
        if sink.users and (state.tls or sink.tls_context is None):
            lines.append("AUTH PLAIN")
        lines.append("8BITMIME")
        return lines

    def _auth_plain(self, state: _State, argument: str) -> None:
        sink = self.server.sink
        if not argument:
            self._send("334 ")
            raw = self._read()
            argument = raw.decode("ascii", "replace").strip() if raw else ""
        try:
            _zid, user, password = base64.b64decode(argument, validate=True).decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self._send("501 malformed AUTH PLAIN")
            return
        with sink.lock:
            sink.logins.append((user, password, state.tls))
        if sink.users.get(user) == password:
            state.user = user
            self._send("235 authenticated")
        else:
            self._send("535 authentication failed")

    def _data(self, state: _State) -> None:
        self._send("354 end with <CRLF>.<CRLF>")
        chunks: List[bytes] = []
        size = 0
        while True:
            line = self._read()
            if line is None:
                return
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > _MAX_DATA:
                self._send("552 too large")
                return
            chunks.append(line)
        sink = self.server.sink
        with sink.lock:
            sink.messages.append(Received(state.mail_from or "", list(state.rcpt_to), b"".join(chunks),
                                          state.tls, state.user))
            sink.arrived.notify_all()
        state.mail_from, state.rcpt_to = None, []
        self._send("250 queued")

    def handle(self) -> None:
        state = _State()
        try:
            self._send("220 sink.test ESMTP test sink")
            while True:
                raw = self._read()
                if raw is None:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb, _space, argument = line.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    lines = self._ehlo_lines(state)
                    for text in lines[:-1]:
                        self._send("250-" + text)
                    self._send("250 " + lines[-1])
                elif verb == "HELO":
                    self._send("250 sink.test")
                elif verb == "STARTTLS" and self.server.sink.tls_context is not None and not state.tls:
                    self._send("220 go ahead")
                    self._start_tls()
                    # RFC 3207: the client starts over with EHLO; nothing from before TLS counts.
                    state = _State(tls=True)
                elif verb == "AUTH" and argument.upper().startswith("PLAIN") and self.server.sink.users:
                    self._auth_plain(state, argument[5:].strip())
                elif verb == "MAIL" and argument.upper().startswith("FROM:"):
                    if self.server.sink.users and state.user is None:
                        self._send("530 authentication required")
                        continue
                    state.mail_from, state.rcpt_to = argument[5:].strip(), []
                    self._send("250 ok")
                elif verb == "RCPT" and argument.upper().startswith("TO:") and state.mail_from is not None:
                    state.rcpt_to.append(argument[3:].strip())
                    self._send("250 ok")
                elif verb == "DATA" and state.rcpt_to:
                    self._data(state)
                elif verb == "RSET":
                    state.mail_from, state.rcpt_to = None, []
                    self._send("250 ok")
                elif verb == "NOOP":
                    self._send("250 ok")
                elif verb == "QUIT":
                    self._send("221 bye")
                    return
                else:
                    self._send("500 not understood")
        except (OSError, ssl.SSLError):
            # A client that probes with TLS on the plain port (community.general.mail does) or goes away.
            return
        finally:
            if isinstance(self.connection, ssl.SSLSocket):
                # The server closes the plain socket it accepted; wrapping detached it from this one.
                self.connection.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: "SmtpSink"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every message; see the module docstring."""

    def __init__(self, tls: Optional[Tuple[str, str]] = None, users: Optional[Dict[str, str]] = None):
        self.tls_context: Optional[ssl.SSLContext] = None
        if tls is not None:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(*tls)
        self.users = dict(users or {})
        self.messages: List[Received] = []
        self.logins: List[Tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self._server = _Server((LOOPBACK, 0), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="smtp-sink", daemon=True)

    def __enter__(self) -> "SmtpSink":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def wait_for(self, count: int, timeout: float = 10.0) -> List[Received]:
        """The messages, once there are at least ``count`` (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.arrived.wait(max(0.0, deadline - time.monotonic()))
            return list(self.messages)
