# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the echo engine in a fresh interpreter, as the module process does, and reports how it forked.

    python tests/system/second_process_probe.py < {"params": {...}, "copy": "...", ...}

The test process itself has threads (hostile servers, pipe readers), and the engine never forks
a process with threads; this probe has only its main thread. Options:

* ``copy``: ``normal`` (the engine as shipped); ``dies-at-once`` (the copy exits before it takes
  a peer); ``dies-after-3`` (the copy delivers three results, then fails writing the fourth);
  ``hangs`` (the copy sleeps, taking nothing, until it is killed; stall limit 2 s);
* ``stall_limit``: seconds, instead of the engine's own stall limit;
* ``other_thread``: start a thread first (the engine must then stay in one process);
* ``interrupt_collect``: KeyboardInterrupt where the original starts waiting for the copy;
* ``interrupt_own_share``: KeyboardInterrupt at the original's first result of its own share, while
  its workers are still echoing; ``linger_s`` then keeps the probe alive that long, so that those
  workers go back to the shared queue before the report;
* ``pid_file``: the copy's pid is written there as soon as it exists;
* ``close_stdin``: close fd 0 once the spec is read, so the next pipe the engine makes lands on it;
* ``hung_lookup_s``: name lookups of hosts named ``hang-*`` block this long, then fail as glibc's do
  when no name server answers.

Prints one JSON object: ``forks`` (fork() calls), ``results``, ``copy_delivered`` (the indices the
copy delivered), ``arrivals_s`` (when each of the copy's results arrived, seconds after the start),
``kills`` (times the original killed a running copy), ``interrupted``, ``thread_errors`` (exceptions
that ended a thread), ``children_left`` (child processes, running or not reaped) and ``wall_s``.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.collection_path import ensure_collection_path  # noqa: E402


def main() -> None:
    spec = json.load(sys.stdin)
    ensure_collection_path()
    from ansible_collections.dicom.network.plugins.module_utils import echo_engine
    from ansible_collections.dicom.network.plugins.module_utils.echo_validation import validate_request

    parent = os.getpid()
    forks, kills, delivered = [], [], []
    real_fork = os.fork

    def counting_fork():
        forks.append(1)
        return real_fork()

    echo_engine.os.fork = counting_fork
    copy = spec.get("copy", "normal")
    real_dumps = json.dumps
    written = []

    def failing_dumps(value, *args, **kwargs):
        if os.getpid() != parent and len(written) >= 3:
            raise OSError("probe: the copy fails here")
        written.append(1)
        return real_dumps(value, *args, **kwargs)

    real_echo = echo_engine._echo_in_this_process

    def misbehaving_echo(*args, **kwargs):
        if os.getpid() != parent:
            if copy == "dies-at-once":
                os._exit(3)
            if copy == "hangs":
                time.sleep(3600)
        return real_echo(*args, **kwargs)

    echo_engine._echo_in_this_process = misbehaving_echo
    helper_class = echo_engine._SecondProcess
    real_kill, real_collect, real_init = helper_class._kill, helper_class.collect, helper_class.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        if spec.get("pid_file"):
            Path(spec["pid_file"]).write_text(str(self.pid))

    def counting_kill(self):
        if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
            kills.append(1)
        real_kill(self)

    def recording_collect(self):
        if spec.get("interrupt_collect"):
            raise KeyboardInterrupt("probe: interrupted while waiting for the copy")
        from_copy = real_collect(self)
        delivered.extend(sorted(from_copy))
        return from_copy

    helper_class.__init__, helper_class._kill, helper_class.collect = recording_init, counting_kill, recording_collect
    real_loads = json.loads
    arrivals = []

    def timing_loads(text, *args, **kwargs):
        if threading.current_thread().name == "dicom-echo-second-process":
            arrivals.append(time.monotonic() - started)
        return real_loads(text, *args, **kwargs)

    echo_engine.json.loads = timing_loads
    real_result = echo_engine._result

    def interrupting_result(run):
        if os.getpid() == parent and threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt("probe: interrupted in the original's own share")
        return real_result(run)

    if spec.get("interrupt_own_share"):
        echo_engine._result = interrupting_result
    if copy == "dies-after-3":
        echo_engine.json.dumps = failing_dumps
    started = time.monotonic()
    stall_limit = 2.0 if copy == "hangs" else spec.get("stall_limit")
    if stall_limit is not None:
        helper_class.stall_limit_for = staticmethod(lambda request: float(stall_limit))
    thread_errors = []
    threading.excepthook = lambda args: thread_errors.append("%s: %s" % (args.exc_type.__name__, args.exc_value))
    if spec.get("hung_lookup_s"):
        real_getaddrinfo = socket.getaddrinfo

        def hung_getaddrinfo(host, *args, **kwargs):
            if isinstance(host, str) and host.startswith("hang-"):
                time.sleep(float(spec["hung_lookup_s"]))
                raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            return real_getaddrinfo(host, *args, **kwargs)

        socket.getaddrinfo = hung_getaddrinfo
    stop = threading.Event()
    if spec.get("other_thread"):
        threading.Thread(target=stop.wait, daemon=True).start()
    if spec.get("close_stdin"):
        os.close(0)
    interrupted, results = False, []
    try:
        results = echo_engine.run_echoes(validate_request(spec["params"]))
    except KeyboardInterrupt:
        interrupted = True
        time.sleep(float(spec.get("linger_s", 0)))
    wall = time.monotonic() - started
    stop.set()
    json.dump({"forks": len(forks), "results": results, "copy_delivered": delivered, "kills": len(kills),
               "arrivals_s": arrivals,
               "interrupted": interrupted, "thread_errors": thread_errors,
               "children_left": _children(), "wall_s": wall}, sys.stdout)


def _children() -> int:
    """Processes (running, or exited and not reaped) whose parent is this one."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            count += 1
    return count


if __name__ == "__main__":
    main()
