"""Headless Chromium driven over the DevTools protocol on a pipe, for report tests and benchmarks.

``--remote-debugging-pipe`` (file descriptors 3 and 4, NUL-terminated JSON) needs no debugging
port and no extra library. Chromium runs with the flags this machine needs (no background
networking: the network is closed), a fresh profile, in its own process group, and is killed
(bounded) on exit.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class CdpError(RuntimeError):
    pass


def chromium_binary() -> Optional[str]:
    return next((path for path in CHROMIUM_CANDIDATES if os.access(path, os.X_OK)), None)


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int):
        self.write_fd, self.read_fd = write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list = []

    def send(self, method: str, params: Optional[Dict] = None, session: Optional[str] = None,
             timeout: float = 60.0) -> Dict[str, Any]:
        self.next_id += 1
        message: Dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self.receive(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise CdpError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        for index, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(index)
        while True:
            event = self.receive(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def receive(self, deadline: float) -> Dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("no answer from Chromium in time")
            ready, _unused_w, _unused_x = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise CdpError("Chromium closed the DevTools pipe")
                self.buffer += chunk
        raw, _sep, self.buffer = self.buffer.partition(b"\0")
        return json.loads(raw)


class HeadlessPage:
    """One page in a fresh headless Chromium: ``open()`` a file, ``evaluate()`` JavaScript."""

    def __init__(self, chromium: Optional[str] = None, log: Optional[Path] = None):
        self.chromium = chromium or chromium_binary()
        if self.chromium is None:
            raise FileNotFoundError("no Chromium binary in %s" % ", ".join(CHROMIUM_CANDIDATES))
        self.log = log
        self.started = 0.0

    def __enter__(self) -> "HeadlessPage":
        self.profile = tempfile.mkdtemp(prefix="dicom-network-chromium-")
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()

        def child_fds() -> None:
            # Chromium reads commands on fd 3 and writes on fd 4. Copies first, so that a pipe end
            # already numbered 3 or 4 is not clobbered; every other descriptor Python opened is
            # close-on-exec (PEP 446), hence close_fds=False below.
            read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.stderr = open(self.log, "ab") if self.log else subprocess.DEVNULL  # pylint: disable=consider-using-with
        self.started = time.monotonic()
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [self.chromium] + FLAGS + ["--user-data-dir=%s" % self.profile, "--remote-debugging-pipe",
                                       "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            preexec_fn=child_fds, close_fds=False, start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.fds = (to_chrome_w, from_chrome_r)
        self.pipe = _Pipe(to_chrome_w, from_chrome_r)
        try:
            targets = self.pipe.send("Target.getTargets", timeout=30)["targetInfos"]
            page = next((t for t in targets if t.get("type") == "page"), None)
            target_id = page["targetId"] if page else self.pipe.send(
                "Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.pipe.send("Target.attachToTarget",
                                          {"targetId": target_id, "flatten": True})["sessionId"]
            self.pipe.send("Page.enable", session=self.session)
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def add_init_script(self, source: str) -> None:
        self.pipe.send("Page.addScriptToEvaluateOnNewDocument", {"source": source}, session=self.session)

    def open(self, path: Path, timeout: float = 60.0) -> float:
        """Navigate to a local file and wait for its load event; returns the seconds it took."""
        started = time.monotonic()
        self.pipe.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=self.session,
                       timeout=timeout)
        self.pipe.wait_event("Page.loadEventFired", timeout)
        return time.monotonic() - started

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited)."""
        answer = self.pipe.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                     "returnByValue": True}, session=self.session,
                                timeout=timeout)
        if "exceptionDetails" in answer:
            raise CdpError("script failed: %s" % json.dumps(answer["exceptionDetails"])[:800])
        return answer.get("result", {}).get("value")

    def __exit__(self, *exc) -> None:
        try:
            self.pipe.send("Browser.close", timeout=5)
        except (CdpError, OSError, AttributeError):
            pass
        for fd in getattr(self, "fds", ()):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.proc.wait(3)
                break
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(self.profile, ignore_errors=True)
        if self.log:
            self.stderr.close()
