# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: wall-clock time stamps of the play, every task and every host result.

Enabled by benchmarks/ansible_runner.py with ANSIBLE_CALLBACK_PLUGINS + ANSIBLE_CALLBACKS_ENABLED;
writes one JSON document to $BENCH_TIMER_OUT when the playbook ends. For results of the
dicom.network.echo module it keeps the summary and, per peer, the outcome and the total time, so
the harness can split Ansible overhead from echo time without the playbook writing anything.
"""
from __future__ import annotations

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Time stamps of tasks and host results for the dicom.network benchmarks
description:
  - Writes task and result time stamps (time.time()) to the file named by BENCH_TIMER_OUT.
requirements:
  - BENCH_TIMER_OUT set in the environment
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


def _outcome(peer):
    """``success``, or the outcome with the phase it happened in (``timeout@connect``)."""
    outcome = peer.get("outcome")
    return outcome if outcome == "success" else "%s@%s" % (outcome, peer.get("phase"))


def _echo_digest(result):
    """What the benchmarks need from one dicom.network.echo result (a dict with summary/results)."""
    # Only an echo result: the echo_audit_report action also returns a summary (of the matrix).
    if not isinstance(result, dict) or "duration_ms" not in (result.get("summary") or {}):
        return None
    peers = result.get("results") or []
    return {
        "summary": result.get("summary"),
        "totals_ms": [((p.get("timings_ms") or {}).get("total")) for p in peers if isinstance(p, dict)],
        "outcomes": [_outcome(p) for p in peers if isinstance(p, dict)],
        "failed": bool(result.get("failed")),
        "msg": str(result.get("msg", ""))[:300],
    }


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._out = os.environ.get("BENCH_TIMER_OUT")
        self._doc = {"playbook_start": None, "playbook_end": None, "tasks": [], "results": []}
        self._task_index = {}

    def _task(self, task):
        uuid = task._uuid
        if uuid not in self._task_index:
            role = getattr(task, "_role", None)
            self._task_index[uuid] = len(self._doc["tasks"])
            self._doc["tasks"].append({"name": task.get_name(), "action": task.action,
                                       "role": role.get_name() if role else None,
                                       "path": task.get_path(), "start": None})
        return self._task_index[uuid]

    def v2_playbook_on_start(self, playbook):
        self._doc["playbook_start"] = time.time()

    def v2_playbook_on_task_start(self, task, is_conditional):
        index = self._task(task)
        if self._doc["tasks"][index]["start"] is None:
            self._doc["tasks"][index]["start"] = time.time()

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _record(self, status, result, item=False):
        now = time.time()
        entry = {"task": self._task(result._task), "host": result._host.get_name(), "status": status,
                 "end": now, "item": item}
        raw = result._result
        digests = []
        if isinstance(raw, dict):
            digest = _echo_digest(raw)
            if digest is not None:
                digests.append(digest)
            elif not item:
                for sub in raw.get("results") or []:
                    sub_digest = _echo_digest(sub) if isinstance(sub, dict) else None
                    if sub_digest is not None:
                        digests.append(sub_digest)
        if digests:
            entry["echo"] = digests
        self._doc["results"].append(entry)

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("failed", result)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)

    def v2_runner_item_on_ok(self, result):
        self._record_item("ok", result)

    def v2_runner_item_on_failed(self, result):
        self._record_item("failed", result)

    def _record_item(self, status, result):
        raw = result._result if isinstance(result._result, dict) else {}
        item = raw.get("item")
        label = item if isinstance(item, (str, int, float)) else None
        self._doc["results"].append({"task": self._task(result._task), "host": result._host.get_name(),
                                     "status": status, "end": time.time(), "item": True, "label": label})

    def v2_playbook_on_stats(self, stats):
        self._doc["playbook_end"] = time.time()
        if self._out:
            tmp = self._out + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(self._doc, handle)
            os.replace(tmp, self._out)
