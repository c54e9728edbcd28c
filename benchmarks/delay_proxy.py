"""A TCP proxy that delays every byte by a fixed one-way latency, to emulate a link between sites.

This kernel has no ``tc netem``, so the benchmarks put this proxy in front of each peer:

    python -m benchmarks.delay_proxy --delay-ms 5 --route 127.0.0.1:21001=127.0.0.1:104 ...

Model (one-way delay ``d``, infinite bandwidth, no loss):

* Bytes read from either side are written to the other side ``d`` later, in order; an EOF
  (FIN) travels the same way, so a release or a close arrives ``d`` late too.
* The client's ``connect()`` completes at once (the proxy's kernel answers the SYN), so the
  first client bytes are held until ``3 d`` after the accept: on a real link the client could
  only send after one round trip (SYN, SYN-ACK) and its data would arrive half a round trip
  later. Everything after that is exactly "d each way", so an A-ASSOCIATE / C-ECHO / A-RELEASE
  exchange costs the same as over a real link with ``2 d`` round-trip time.
* The upstream connection is bound to the client's own source address when that is a
  loopback address, so a peer that checks the caller's address (Orthanc
  ``DicomCheckModalityHost``, dcmqrscp ``-dhl``) sees the real source.
* Refused or unreachable upstream: the client connection is closed (after ``d``); the client
  sees "peer closed" instead of "refused" -- do not proxy peers whose connect phase matters.

Listens only where told (the benchmarks use loopback or addresses inside their own network
namespace). Prints ``READY`` on stdout once every route listens; stops on SIGTERM/SIGINT or, with
``--watch-stdin``, on EOF on stdin (parent gone). Every connection is closed on stop.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import ipaddress
import signal
import socket
import sys
import threading
from typing import Deque, List, Optional, Set, Tuple

READ_SIZE = 65536
UPSTREAM_CONNECT_TIMEOUT_S = 10.0


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def _close(writer: Optional[asyncio.StreamWriter]) -> None:
    if writer is None:
        return
    try:
        writer.close()
    except (OSError, RuntimeError):
        pass


class _Direction:
    """One direction of a connection: bytes become due ``delay`` after they were read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                 not_before: float):
        self.reader = reader
        self.writer = writer
        self.delay = delay
        self.not_before = not_before
        self.queue: Deque[Tuple[float, bytes]] = collections.deque()
        self.ready = asyncio.Event()

    async def pump_in(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                self.queue.append((max(loop.time() + self.delay, self.not_before), data))
                self.ready.set()
                if not data:
                    return
        except (OSError, asyncio.IncompleteReadError):
            self.queue.append((loop.time() + self.delay, b""))
            self.ready.set()

    async def pump_out(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            due, data = self.queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.queue.popleft()
            if not data:
                try:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            self.writer.write(data)
            await self.writer.drain()


class DelayProxy:
    def __init__(self, routes: List[Tuple[str, int, str, int]], delay: float):
        self.routes = routes
        self.delay = delay
        self.servers: List[asyncio.AbstractServer] = []
        self.tasks: Set[asyncio.Task] = set()
        self.writers: Set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def start(self) -> None:
        for listen_host, listen_port, up_host, up_port in self.routes:
            async def handle(reader, writer, up=(up_host, up_port)):
                await self._handle(reader, writer, up)
            server = await asyncio.start_server(handle, listen_host, listen_port, backlog=1024,
                                                reuse_address=True)
            self.servers.append(server)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                      upstream: Tuple[str, int]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.connections += 1
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        self.writers.add(client_w)
        _nodelay(client_w)
        server_w = None
        try:
            peer = client_w.get_extra_info("peername")
            local_addr = None
            if peer and ipaddress.ip_address(peer[0]).is_loopback and ":" not in peer[0] \
                    and ":" not in upstream[0] and ipaddress.ip_address(upstream[0]).is_loopback:
                local_addr = (peer[0], 0)
            try:
                server_r, server_w = await asyncio.wait_for(
                    asyncio.open_connection(upstream[0], upstream[1], local_addr=local_addr),
                    UPSTREAM_CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(self.delay)
                return
            self.writers.add(server_w)
            _nodelay(server_w)
            up = _Direction(client_r, server_w, self.delay, accepted + 3 * self.delay)
            down = _Direction(server_r, client_w, self.delay, 0.0)
            pumps = [asyncio.ensure_future(coro) for coro in
                     (up.pump_in(), up.pump_out(), down.pump_in(), down.pump_out())]
            try:
                # Done when both directions delivered their EOF, or when either side fails.
                pending = set(pumps)
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                    if any(t.exception() is not None for t in done if not t.cancelled()):
                        break
                    if pumps[1].done() and pumps[3].done():
                        break
            finally:
                for t in pumps:
                    t.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except asyncio.CancelledError:
            pass
        finally:
            for w in (client_w, server_w):
                if w is not None:
                    self.writers.discard(w)
                    _close(w)
            if task is not None:
                self.tasks.discard(task)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for w in list(self.writers):
            _close(w)
        for t in list(self.tasks):
            t.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2.0)


def parse_route(text: str) -> Tuple[str, int, str, int]:
    """``LHOST:LPORT=UHOST:UPORT`` (IPv6 in brackets)."""
    def split(part: str) -> Tuple[str, int]:
        host, _sep, port = part.rpartition(":")
        return host.strip("[]"), int(port)
    listen, _sep, up = text.partition("=")
    if not up:
        raise argparse.ArgumentTypeError("route must be LHOST:LPORT=UHOST:UPORT, got %r" % text)
    return split(listen) + split(up)


async def _main(args) -> int:
    proxy = DelayProxy(args.route, args.delay_ms / 1000.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await proxy.start()
    except OSError as exc:
        print("ERROR cannot listen: %s" % exc, flush=True)
        return 2
    if args.watch_stdin:
        def watch() -> None:
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except (OSError, ValueError):
                pass
            loop.call_soon_threadsafe(stop.set)
        threading.Thread(target=watch, daemon=True).start()
    print("READY", flush=True)
    await stop.wait()
    await proxy.stop()
    print("connections %d" % proxy.connections, file=sys.stderr, flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="TCP proxy adding a fixed one-way delay")
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--route", type=parse_route, action="append", required=True)
    parser.add_argument("--watch-stdin", action="store_true")
    parser.add_argument("--selector", choices=("select", "epoll"), default="epoll",
                        help="select: microsecond timers but file descriptors < 1024 only")
    args = parser.parse_args(argv)
    if args.selector == "select":
        # select() takes a microsecond timeout where epoll rounds up to a millisecond; measured
        # here, both add ~0.4 ms per direction (wake-up and Python), so epoll is the default.
        import selectors
        loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_main(args))
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
