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
import time
from pathlib import Path
from typing import Any, Dict, Optional

from tests.browser import CdpError, HeadlessPage

CHROMIUM = "/usr/bin/chromium"

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


def measure_page(path: Path, timeout: float = 120.0, chromium: str = CHROMIUM,
                 log: Optional[Path] = None) -> Dict[str, Any]:
    """Open ``path`` (a local file) in a fresh headless Chromium and return the measurements;
    Chromium's stderr goes to ``log`` (default: discarded)."""
    if not os.access(chromium, os.X_OK):
        raise FileNotFoundError("%s not found" % chromium)
    with HeadlessPage(chromium, log) as page:
        page.add_init_script(_OBSERVER)
        browser_start = time.monotonic() - page.started
        wall_load = page.open(path, timeout)
        value = page.evaluate(_PROBE, timeout)
        if not isinstance(value, str):
            raise CdpError("probe failed: %r" % (value,))
        result = json.loads(value)
        result["wall_load_s"] = wall_load
        result["browser_start_s"] = browser_start
        return result
