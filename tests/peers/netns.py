"""Network namespaces for tests that need addresses, firewalls or DNS failures that must
never leave the machine.

``NetNamespace.create()`` makes a namespace with a unique name (``dnt-<pid>-<n>``), brings
``lo`` up, adds NO default route, and writes ``/etc/netns/<name>/resolv.conf`` with
``nameserver 127.0.0.1`` (``ip netns exec`` bind-mounts it over /etc/resolv.conf), so a
DNS lookup inside fails locally ("Temporary failure in name resolution") instead of
reaching the host's resolver.  Any address without a route gives ENETUNREACH at once.

Helpers (all bounded, argument lists only):

* ``ns.run(argv, timeout=...)``    run a command inside (``ip netns exec``), capture output
* ``ns.popen(name, argv, log)``    start a long-running ``ManagedProcess`` inside
* ``ns.add_address("10.250.0.1/32")``  add an address to the namespace's ``lo``
* ``ns.firewall(port, "drop"|"reject")`` iptables INPUT rule inside the namespace (a DROP
  makes connects to that port hang until the client's own timeout: a "blackholed" peer)
* ``ns.veth_to(other, addr_self, addr_other)`` veth pair between two of OUR namespaces
* ``ns.delete()``                  delete namespace and /etc/netns/<name> (and /etc/netns
  itself if this process created it and it is empty)
* ``NetNamespace.remove_abandoned(prefix)``  delete those of a creator killed before its cleanup ran

Module-level ``run_in_netns(name, argv, ...)`` is the functional form.

If ``ip netns add`` is not permitted (not root, no CAP_SYS_ADMIN, no iproute2),
``create()`` raises ``NetnsUnavailable`` with the reason; the fixture turns that into
``pytest.skip``.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence

from .base import ManagedProcess, peer_env

_counter = itertools.count()
ETC_NETNS = Path("/etc/netns")
RUN_NETNS = Path("/run/netns")
_created_etc_netns = False  # we made /etc/netns: remove it again once empty


class NetnsUnavailable(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _ip(args: Sequence[str], timeout: float = 10.0, check: bool = True
        ) -> subprocess.CompletedProcess:
    exe = shutil.which("ip")
    if exe is None:
        raise NetnsUnavailable("iproute2 'ip' binary not found")
    res = subprocess.run([exe] + list(args), stdin=subprocess.DEVNULL, capture_output=True, check=False,
                         text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError("ip %s failed (%s): %s" % (" ".join(args), res.returncode,
                                                      res.stderr.strip()))
    return res


def run_in_netns(name: str, argv: Sequence[str], timeout: float = 30.0,
                 env: Optional[dict] = None, input: Optional[str] = None
                 ) -> subprocess.CompletedProcess:
    """Run ``argv`` inside namespace ``name``; returns CompletedProcess (text, captured).
    Raises subprocess.TimeoutExpired after ``timeout`` (the child is killed)."""
    exe = shutil.which("ip") or "ip"
    return subprocess.run([exe, "netns", "exec", name] + [str(a) for a in argv], check=False,
                          input=input, capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else peer_env())


class NetNamespace:
    def __init__(self, name: str):
        self.name = name
        self.etc_dir = ETC_NETNS / name
        self._procs: List[ManagedProcess] = []
        self._deleted = False

    @classmethod
    def create(cls, prefix: str = "dnt") -> "NetNamespace":
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (euid %d)" % os.geteuid())
        name = "%s-%d-%d" % (prefix, os.getpid(), next(_counter))
        res = _ip(["netns", "add", name], check=False)
        if res.returncode != 0:
            raise NetnsUnavailable("'ip netns add' not permitted here: %s" % res.stderr.strip())
        ns = cls(name)
        global _created_etc_netns
        try:
            if not ETC_NETNS.exists():
                ETC_NETNS.mkdir(mode=0o755)
                _created_etc_netns = True
            ns.etc_dir.mkdir(parents=True, exist_ok=True)
            (ns.etc_dir / "resolv.conf").write_text(
                "# dicom.network tests: DNS inside this namespace fails locally\n"
                "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            _ip(["-n", name, "link", "set", "lo", "up"])
            routes = _ip(["-n", name, "route", "show", "default"]).stdout.strip()
            if routes:
                raise RuntimeError("unexpected default route in new namespace: %s" % routes)
        except Exception:
            ns.delete()
            raise
        return ns

    @classmethod
    def remove_abandoned(cls, prefix: str) -> List[str]:
        """Delete the namespaces ``<prefix>-<pid>-<n>`` whose creator is gone (killed with SIGKILL, so
        that its own cleanup never ran) and in which nothing runs any more; returns their names. A
        namespace whose creator lives, or with a process inside, is left alone."""
        removed = []
        pattern = re.compile(r"^%s-(\d+)-\d+$" % re.escape(prefix))
        try:
            names = sorted(os.listdir(RUN_NETNS))
        except OSError:
            return removed
        for name in names:
            match = pattern.match(name)
            if match is None or _alive(int(match.group(1))):
                continue
            if _ip(["netns", "pids", name], check=False).stdout.split():
                continue
            _ip(["netns", "delete", name], check=False)
            shutil.rmtree(ETC_NETNS / name, ignore_errors=True)
            if not (RUN_NETNS / name).exists():
                removed.append(name)
        return removed

    # -- running things inside
    def run(self, argv: Sequence[str], timeout: float = 30.0, env: Optional[dict] = None,
            input: Optional[str] = None) -> subprocess.CompletedProcess:
        return run_in_netns(self.name, argv, timeout=timeout, env=env, input=input)

    def popen(self, name: str, argv: Sequence[str], log_path: Path,
              env: Optional[dict] = None, stdout_pipe: bool = False,
              stdin_pipe: bool = False) -> ManagedProcess:
        """Long-running process inside the namespace (``ip netns exec`` execs the command,
        so the pid/process group is the command's own).  Stopped by ``delete()``."""
        exe = shutil.which("ip") or "ip"
        proc = ManagedProcess(name, [exe, "netns", "exec", self.name] + list(argv), log_path,
                              env=env, stdout_pipe=stdout_pipe, stdin_pipe=stdin_pipe)
        self._procs.append(proc)
        return proc

    # -- shaping the namespace
    def add_address(self, cidr: str, dev: str = "lo") -> None:
        _ip(["-n", self.name, "addr", "add", cidr, "dev", dev])

    def firewall(self, port: int, action: str = "drop", proto: str = "tcp") -> None:
        """INPUT rule inside the namespace: ``drop`` (blackhole) or ``reject`` (RST)."""
        if shutil.which("iptables") is None:
            raise NetnsUnavailable("iptables not installed")
        if action == "drop":
            target = ["-j", "DROP"]
        elif action == "reject":
            target = ["-j", "REJECT", "--reject-with", "tcp-reset"]
        else:
            raise ValueError(action)
        res = self.run(["iptables", "-A", "INPUT", "-p", proto, "--dport", str(port)] + target,
                       timeout=10)
        if res.returncode != 0:
            raise RuntimeError("iptables failed: %s" % res.stderr.strip())

    def veth_to(self, other: "NetNamespace", addr_self: str, addr_other: str) -> None:
        """A veth pair between two of our namespaces, created directly inside them (never
        in the host namespace).  Addresses in CIDR form, e.g. 10.251.0.1/30."""
        a = "v%d%s" % (os.getpid() % 10000, self.name[-3:].replace("-", ""))
        b = a + "p"
        _ip(["-n", self.name, "link", "add", a[:15], "type", "veth", "peer", "name", b[:15],
             "netns", other.name])
        _ip(["-n", self.name, "addr", "add", addr_self, "dev", a[:15]])
        _ip(["-n", other.name, "addr", "add", addr_other, "dev", b[:15]])
        _ip(["-n", self.name, "link", "set", a[:15], "up"])
        _ip(["-n", other.name, "link", "set", b[:15], "up"])

    # -- cleanup
    def delete(self) -> None:
        if self._deleted:
            return
        self._deleted = True
        for p in self._procs:
            try:
                p.stop(term_timeout=3.0, kill_timeout=2.0)
            except Exception:
                pass
        # Kill anything else still running inside (bounded).
        try:
            pids = _ip(["netns", "pids", self.name], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
        except Exception:
            pass
        _ip(["netns", "delete", self.name], check=False)
        shutil.rmtree(self.etc_dir, ignore_errors=True)
        if _created_etc_netns:
            try:
                ETC_NETNS.rmdir()  # only if empty
            except OSError:
                pass

    def __enter__(self) -> "NetNamespace":
        return self

    def __exit__(self, *exc) -> None:
        self.delete()
