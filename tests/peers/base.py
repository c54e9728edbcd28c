"""Shared plumbing for the real DICOM test peers: the ``Peer`` record, free ports,
waiting for a listener, and a process runner that never leaves orphans.

Everything here listens on, or talks to, loopback only.  Kept compatible with
Python 3.9 (the pynetdicom 2.0.2 interpreter imports nothing from here, but
helpers may be reused from there).

Process hygiene
---------------
* Every child is started in its own session/process group (``start_new_session``)
  so that ``stop()`` can signal the whole group (dcmqrscp/storescp/wlmscpfs fork a
  child per association).
* On Linux the child also gets ``PR_SET_PDEATHSIG=SIGKILL``: if the pytest process
  is killed outright the direct child dies with it.  (Forked grandchildren of
  DCMTK servers do not inherit it, but they exit when their association ends.)
* All running processes are also registered for an ``atexit`` sweep.
* ``stop()``: SIGTERM to the group, bounded wait, then SIGKILL to the group,
  bounded wait.  All waits are bounded.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import random
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

LOOPBACK = "127.0.0.1"

# Ports we hand out come from this range, below Linux's default ephemeral range
# (32768-60999), so that a client's ephemeral source port cannot take a peer's port
# between allocation and the peer's bind.
_PORT_RANGE = (20000, 32000)
_handed_out: set = set()
_port_lock = threading.Lock()


@dataclass
class Peer:
    """A running test peer.

    ``name``      short id, e.g. ``"pynetdicom:accept"``
    ``host``      address to connect to (always loopback or inside our namespace)
    ``port``      TCP port
    ``ae_title``  the called AE title that the peer answers to (``None``: any / n.a.)
    ``kind``      ``pynetdicom`` | ``dcmtk`` | ``orthanc`` | ``hostile`` | ``closed``
    ``notes``     what the peer does, measured with DCMTK echoscu
    ``extra``     free-form details (allowed calling AEs, expected reject codes, TLS files...)
    ``control``   in-process object (hostile servers) or None
    ``counter``   callable returning the number of TCP connections accepted so far, or None
    """

    name: str
    host: str
    port: int
    ae_title: Optional[str]
    kind: str
    notes: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)
    control: Any = field(default=None, repr=False, compare=False)
    counter: Optional[Callable[[], int]] = field(default=None, repr=False, compare=False)

    @property
    def address(self) -> tuple:
        return (self.host, self.port)

    def connection_count(self) -> int:
        """TCP connections this peer has accepted since it started (cumulative for the
        session: compare before/after).  Raises if the peer cannot count."""
        if self.counter is None:
            raise NotImplementedError(f"peer {self.name} does not count connections")
        return self.counter()


# --------------------------------------------------------------------------- ports
def _bindable(host: str, port: int) -> bool:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        # No SO_REUSEADDR: a port in TIME_WAIT counts as busy, which is what we want.
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(host: str = LOOPBACK, also_wildcard: bool = True) -> int:
    """Return a TCP port that is currently free on ``host`` (and on 0.0.0.0 when
    ``also_wildcard``: DCMTK and Orthanc listen on the wildcard address).

    Never returns the same port twice in one process.  Binding (without listen)
    sends no traffic.
    """
    with _port_lock:
        for _attempt in range(2000):
            port = random.randrange(*_PORT_RANGE)
            if port in _handed_out:
                continue
            if not _bindable(host, port):
                continue
            if also_wildcard and not _bindable("0.0.0.0", port):
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port found in %r" % (_PORT_RANGE,))


def closed_port(host: str = LOOPBACK) -> int:
    """A port with nothing listening on it (connects get RST / ECONNREFUSED)."""
    return free_port(host)


# ----------------------------------------------------------------- readiness
def _proc_listeners() -> Optional[Dict[int, set]]:
    """{port: {socket inodes}} in LISTEN state in this network namespace, from /proc (no
    packets sent); None if /proc/net/tcp is not readable."""
    ports: Dict[int, set] = {}
    found = False
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as fh:
                found = True
                next(fh, None)
                for line in fh:
                    parts = line.split()
                    if len(parts) > 9 and parts[3] == "0A":
                        port = int(parts[1].rsplit(":", 1)[1], 16)
                        ports.setdefault(port, set()).add(parts[9])
        except OSError:
            continue
    return ports if found else None


def _socket_inodes(pids: Sequence[int]) -> set:
    inodes = set()
    for pid in pids:
        fd_dir = "/proc/%d/fd" % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def is_listening(host: str, port: int, pgid: Optional[int] = None) -> bool:
    """Is something listening on ``port``?  With ``pgid``: is it a process of that group
    (so a port taken by somebody else does not count as our server being ready)?"""
    listeners = _proc_listeners()
    if listeners is not None:
        inodes = listeners.get(port)
        if not inodes:
            return False
        if pgid is None:
            return True
        members = group_members(pgid) or []
        return bool(inodes & _socket_inodes(members))
    # Fallback: a real connect (the peer will see and log a connection).
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_listening(host: str, port: int, timeout: float = 10.0,
                   proc: Optional["ManagedProcess"] = None) -> None:
    """Wait (bounded) until something listens on ``port``.

    Uses /proc/net/tcp{,6} so no connection is made (DICOM servers would log a
    failed association, hostile servers would count it).  With ``proc``, the listening
    socket must belong to proc's process group (another session may hold the port), and
    we fail early if ``proc`` has exited.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    pgid = proc.pgid if proc is not None else None
    while True:
        if is_listening(host, port, pgid):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.returncode} before listening on "
                f"{host}:{port}; log tail:\n{proc.log_tail()}")
        if time.monotonic() >= deadline:
            tail = proc.log_tail() if proc is not None else ""
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s\n{tail}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# ------------------------------------------------------------ processes
def group_members(pgid: int) -> Optional[List[int]]:
    """PIDs of live (not zombie) processes in process group ``pgid``, from /proc; None if
    /proc is not readable."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    pids = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as fh:
                stat = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces/parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


_registry: List["ManagedProcess"] = []
_registry_lock = threading.Lock()


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def peer_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for DCMTK/Orthanc children: TCP_NODELAY=1 (else ~40 ms per echo)."""
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    env.setdefault("LC_ALL", "C")
    if extra:
        env.update(extra)
    return env


class ManagedProcess:
    """A child process in its own process group, with a log file, stopped for sure."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path,
                 env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
                 stdin_pipe: bool = False, stdout_pipe: bool = False):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
            env=env if env is not None else peer_env(),
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
            preexec_fn=_pdeathsig,
            close_fds=True,
        )
        self.pid = self.proc.pid
        self.pgid = self.pid  # start_new_session: pgid == pid
        self._term_sent = False
        with _registry_lock:
            _registry.append(self)

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    def poll(self) -> Optional[int]:
        return self.proc.poll()

    def log_tail(self, n: int = 40) -> str:
        try:
            if not self._log.closed:
                self._log.flush()
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def wait_for_line(self, token: str, timeout: float) -> None:
        """Wait (bounded) for a stdout line equal to ``token`` (needs stdout_pipe)."""
        assert self.proc.stdout is not None
        result: Dict[str, Any] = {}
        done = threading.Event()

        def reader() -> None:
            # Keeps draining stdout into the log after the token, so the child can
            # never block on a full pipe.
            try:
                for raw in iter(self.proc.stdout.readline, b""):
                    line = raw.decode(errors="replace").strip()
                    try:
                        self._log.write(b"[stdout] " + raw)
                        self._log.flush()
                    except (ValueError, OSError):
                        pass
                    if not done.is_set():
                        if line == token:
                            result["ok"] = True
                            done.set()
                        elif line.startswith("ERROR"):
                            result["error"] = line
                            done.set()
            except Exception as exc:  # pragma: no cover
                result.setdefault("error", repr(exc))
            finally:
                done.set()

        t = threading.Thread(target=reader, name=f"stdout-{self.name}", daemon=True)
        t.start()
        done.wait(timeout)
        if not result.get("ok"):
            self.stop(term_timeout=2.0)
            why = result.get("error") or ("timeout after %ss or early exit (rc=%s)"
                                          % (timeout, self.proc.poll()))
            raise RuntimeError(f"{self.name} did not become ready ({why}); log tail:\n"
                               f"{self.log_tail()}")

    def group_alive(self) -> bool:
        """True while a live (non-zombie) process of our process group exists.  Zombies do
        not count: dcmqrscp/wlmscpfs reap their forked children lazily, and once the parent
        is gone the zombies wait for PID 1 to reap them (~1-2 s here)."""
        live = group_members(self.pgid)
        if live is not None:
            return bool(live)
        try:
            os.killpg(self.pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self) -> None:
        """Close stdin and SIGTERM the process group, once: a second SIGTERM makes
        Orthanc skip its graceful shutdown."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if not self._term_sent and self.proc.poll() is None:
            self._term_sent = True
            self._signal_group(signal.SIGTERM)

    def stop(self, term_timeout: float = 8.0, kill_timeout: float = 3.0) -> None:
        """SIGTERM the process group (once), wait (bounded), SIGKILL the group, wait
        (bounded) until no live process of the group is left."""
        self.terminate()
        if self.proc.poll() is None:
            try:
                self.proc.wait(term_timeout)
            except subprocess.TimeoutExpired:
                pass
        # Always sweep the group: forked association children may outlive the parent.
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(kill_timeout)
        except subprocess.TimeoutExpired:
            pass
        # Killed grandchildren are re-parented to init and linger as zombies for a moment.
        deadline = time.monotonic() + kill_timeout
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        try:
            self._log.close()
        except OSError:
            pass
        with _registry_lock:
            if self in _registry:
                _registry.remove(self)


def stop_all(procs: Sequence[ManagedProcess], term_timeout: float = 8.0) -> None:
    """Stop several processes concurrently (Orthanc alone takes ~3.5 s on SIGTERM)."""
    for p in procs:
        p.terminate()
    deadline = time.monotonic() + term_timeout
    for p in procs:
        try:
            p.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        p.stop(term_timeout=0.0)


@atexit.register
def _sweep() -> None:
    with _registry_lock:
        left = list(_registry)
    for p in left:
        try:
            p.stop(term_timeout=2.0, kill_timeout=1.0)
        except Exception:
            pass
