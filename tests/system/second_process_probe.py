# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the echo engine in a fresh interpreter, as the module process does, and reports how it forked.

    python tests/system/second_process_probe.py < {"params": {...}, "copy": "...", "other_thread": bool}

The test process itself has threads (hostile servers, pipe readers), and the engine never forks
a process with threads; this probe has only its main thread. ``copy`` makes the forked copy
misbehave, to show that its peers are echoed anyway:

* ``normal``: the engine as shipped;
* ``dies-at-once``: the copy exits before it echoes anything;
* ``dies-after-3``: the copy delivers three results, then fails writing the fourth;
* ``hangs``: the copy sleeps, delivering nothing, until it is killed (stall limit shortened to 2 s).

Prints one JSON object: ``forks`` (fork() calls), ``results``, ``children_left`` (child processes,
running or not reaped), ``wall_s``.
"""
from __future__ import annotations

import json
import os
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
    forks = []
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

    def misbehaving_echo(request, *limit):
        if os.getpid() != parent:
            if copy == "dies-at-once":
                os._exit(3)
            if copy == "hangs":
                time.sleep(3600)
        return real_echo(request, *limit)

    echo_engine._echo_in_this_process = misbehaving_echo
    if copy == "dies-after-3":
        echo_engine.json.dumps = failing_dumps
    if copy == "hangs":
        echo_engine._SecondProcess.stall_limit_for = staticmethod(lambda request: 2.0)
    stop = threading.Event()
    if spec.get("other_thread"):
        threading.Thread(target=stop.wait, daemon=True).start()
    started = time.monotonic()
    results = echo_engine.run_echoes(validate_request(spec["params"]))
    wall = time.monotonic() - started
    stop.set()
    json.dump({"forks": len(forks), "results": results, "children_left": _children(), "wall_s": wall},
              sys.stdout)


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
