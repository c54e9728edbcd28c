"""Load a page in headless Chromium and measure when it becomes interactive, over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: file descriptors 3 and 4, NUL-terminated JSON),
so no debugging port is opened and no extra library is needed.

Measured, in ms since navigation start (Navigation Timing / Paint Timing / Long Tasks API):

* ``dom_interactive``, ``dcl_end`` (DOMContentLoaded handlers done), ``load_end``
* ``fcp``: first contentful paint
* ``interactive``: the end of the last long task (> 50 ms main-thread busy) before the page went
  idle, or ``dcl_end`` if there was none -- the usual time-to-interactive approximation
* ``idle``: when a ``requestAnimationFrame`` + ``setTimeout(0)`` after ``load`` first ran
* ``click_ms`` and ``filter_ms``: what one interaction costs once loaded -- a click on a cell in
  the middle of the matrix (the detail panel must appear), and ticking "only rows and columns
  with a problem" (a style recalculation over every cell), each until the next frame.

Chromium runs with the flags the project prescribes plus ``--remote-debugging-pipe``, a fresh
``--user-data-dir``, in its own process group, killed (bounded) at the end.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_OBSERVER = """
window.__bench = {longtasks: []};
try {
  new PerformanceObserver(function (list) {
    list.getEntries().forEach(function (e) { window.__bench.longtasks.push([e.startTime, e.duration]); });
  }).observe({type: "longtask", buffered: true});
} catch (e) { window.__bench.error = String(e); }
"""

_PROBE = """
new Promise(function (resolve) {
  requestAnimationFrame(function () { setTimeout(function () {
    var idle = performance.now();
    var nav = performance.getEntriesByType("navigation")[0] || {};
    var fcp = performance.getEntriesByName("first-contentful-paint")[0];
    var tasks = (window.__bench && window.__bench.longtasks) || [];
    var lastEnd = 0, busy = 0;
    tasks.forEach(function (t) { lastEnd = Math.max(lastEnd, t[0] + t[1]); busy += t[1]; });
    var out = {dom_interactive: nav.domInteractive, dcl_end: nav.domContentLoadedEventEnd,
               load_end: nav.loadEventEnd, fcp: fcp ? fcp.startTime : null, idle: idle,
               interactive: Math.max(lastEnd, nav.domContentLoadedEventEnd || 0),
               long_tasks: tasks.length, long_task_ms: busy,
               script_ready: !document.getElementById("controls") || !document.getElementById("controls").hidden,
               cells: document.querySelectorAll("#m td").length};
    var rows = document.querySelectorAll("#m tbody tr[data-r]");
    var row = rows[Math.floor(rows.length / 2)];
    var td = row ? row.cells[Math.floor(row.cells.length / 2)] : null;
    var t0 = performance.now();
    if (td) { td.dispatchEvent(new MouseEvent("click", {bubbles: true})); }
    var detail = document.getElementById("detail");
    out.click_shows_detail = !!(detail && !detail.hidden && detail.textContent.length > 0);
    requestAnimationFrame(function () {
      out.click_ms = performance.now() - t0;
      var fp = document.getElementById("fp");
      var t1 = performance.now();
      if (fp) { fp.checked = true; fp.dispatchEvent(new Event("change")); }
      requestAnimationFrame(function () { setTimeout(function () {
        out.filter_ms = fp ? performance.now() - t1 : null;
        resolve(JSON.stringify(out));
      }, 0); });
    });
  }, 0); });
})
"""


class CdpError(RuntimeError):
    pass


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
        import select
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError("no answer from Chromium in time")
            ready = select.select([self.read_fd], [], [], left)[0]
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise CdpError("Chromium closed the DevTools pipe")
                self.buffer += chunk
        raw, _sep, self.buffer = self.buffer.partition(b"\0")
        return json.loads(raw)


def measure_page(path: Path, timeout: float = 120.0, chromium: str = CHROMIUM,
                 log: Optional[Path] = None) -> Dict[str, Any]:
    """Open ``path`` (a local file) in a fresh headless Chromium and return the measurements;
    Chromium's stderr goes to ``log`` (default: discarded)."""
    if not os.access(chromium, os.X_OK):
        raise FileNotFoundError("%s not found" % chromium)
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
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

    stderr = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen([chromium] + FLAGS + ["--user-data-dir=%s" % profile, "--remote-debugging-pipe",
                                                  "about:blank"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                            preexec_fn=child_fds, close_fds=False, start_new_session=True)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    pipe = _Pipe(to_chrome_w, from_chrome_r)
    started = time.monotonic()
    try:
        targets = pipe.send("Target.getTargets", timeout=30)["targetInfos"]
        page = next((t for t in targets if t.get("type") == "page"), None)
        target_id = page["targetId"] if page else pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        pipe.send("Page.enable", session=session)
        pipe.send("Page.addScriptToEvaluateOnNewDocument", {"source": _OBSERVER}, session=session)
        t_nav = time.monotonic()
        pipe.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session, timeout=timeout)
        pipe.wait_event("Page.loadEventFired", timeout)
        t_load = time.monotonic()
        answer = pipe.send("Runtime.evaluate", {"expression": _PROBE, "awaitPromise": True, "returnByValue": True},
                           session=session, timeout=timeout)
        value = answer.get("result", {}).get("value")
        if not isinstance(value, str):
            raise CdpError("probe failed: %s" % json.dumps(answer)[:500])
        result = json.loads(value)
        result["wall_load_s"] = t_load - t_nav
        result["browser_start_s"] = t_nav - started
        try:
            pipe.send("Browser.close", timeout=5)
        except CdpError:
            pass
        return result
    finally:
        for fd in (to_chrome_w, from_chrome_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(3)
                break
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(profile, ignore_errors=True)
        if log:
            stderr.close()
