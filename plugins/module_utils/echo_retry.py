# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retries of the echoes a busy peer may answer next time: no false alarm from one moment of load.

A peer at its association limit answers any caller with a rejection by its service provider
(local-limit-exceeded, temporary-congestion), and a loaded one may miss a deadline; neither is a
decision about the route. After every peer has been echoed once, those are echoed again, after
``retry_delay``, at most ``retries`` times; each result keeps its earlier attempts.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import EchoRequest

_ATTEMPT_KEYS = ("outcome", "phase", "message", "started_at")


def retryable(result: Dict[str, Any]) -> bool:
    """Not as expected, and an answer that may well differ in a moment: a timeout, or a rejection by
    the peer's presentation service provider (its load, not its configuration)."""
    if result["ok"]:
        return False
    reject = result.get("reject") or {}
    return result["outcome"] == "timeout" or (
        result["outcome"] == "rejected" and reject.get("source") == "service-provider-presentation")


def run_with_retries(request: EchoRequest, run: Callable[[EchoRequest], List[Dict[str, Any]]],
                     sleep: Callable[[float], None] = time.sleep) -> List[Dict[str, Any]]:
    """``run(request)``, then the retryable peers again (all of them in one call, so they keep running
    concurrently) up to ``request.retries`` times. Every result gets ``attempts`` (how many were made)
    and ``earlier_attempts`` (outcome, phase, message, started_at of each before the last); a result
    that was as expected only after a retry says so in its message, and one that never was, how many
    attempts it took."""
    results = run(request)
    for result in results:
        result["attempts"], result["earlier_attempts"] = 1, []
    for attempt in range(2, request.retries + 2):
        again = [index for index, result in enumerate(results) if retryable(result)]
        if not again:
            break
        sleep(request.retry_delay)
        for index, result in zip(again, run(dataclasses.replace(request, peers=[request.peers[i] for i in again]))):
            before = results[index]
            result["attempts"] = attempt
            result["earlier_attempts"] = before["earlier_attempts"] + [{key: before[key] for key in _ATTEMPT_KEYS}]
            if result["ok"]:
                first = result["earlier_attempts"][0]
                result["message"] += "; ok after retry (attempt %d; first: %s during %s)" % (
                    attempt, first["outcome"], first["phase"])
            results[index] = result
    for result in results:
        if not result["ok"] and result["earlier_attempts"]:
            # Why the check took retries x its deadlines, and that the retries did not change the answer.
            result["message"] += "; %d attempts, the earlier: %s" % (result["attempts"], ", ".join(
                "%s during %s" % (earlier["outcome"], earlier["phase"]) for earlier in result["earlier_attempts"]))
    return results
