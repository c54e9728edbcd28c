"""A TLS-terminating TCP proxy on loopback, in this process: HTTPS in front of an HTTP server.

Orthanc 1.10.1 of Debian 12 cannot serve HTTPS itself: with ``SslEnabled`` its civetweb worker
completes the TLS handshake and then segfaults on the first request (measured; ``dmesg`` shows
``civetweb-worker ... segfault at 0 ip 0``; asserted in tests/system/test_orthanc_echo.py). Sites put
a reverse proxy in front of it, and so do the tests: this one wraps each accepted connection in
TLS with a test certificate and pipes the bytes to the backend port.
"""
from __future__ import annotations

import socket
import ssl
import threading
from typing import List, Optional

from .base import LOOPBACK


class TlsProxy:
    def __init__(self, backend_port: int, cert: str, key: str, host: str = LOOPBACK):
        self.backend = (host, backend_port)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.handshake_failures = 0
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._acceptor: Optional[threading.Thread] = None

    def start(self) -> "TlsProxy":
        self._acceptor = threading.Thread(target=self._accept_loop, name="tls-proxy", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=3)
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), name="tls-proxy-conn", daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_failures += 1
            conn.close()
            return
        try:
            backend = socket.create_connection(self.backend, timeout=10)
        except OSError:
            tls.close()
            return
        # The backend's answer to an echo may take as long as the echo: no read timeout there.
        backend.settimeout(None)
        tls.settimeout(None)
        pump = threading.Thread(target=self._pipe, args=(backend, tls), name="tls-proxy-pipe", daemon=True)
        pump.start()
        self._pipe(tls, backend)
        pump.join(timeout=5)
        for sock in (tls, backend):
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
