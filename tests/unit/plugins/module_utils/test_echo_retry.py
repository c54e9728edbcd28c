"""Retries of the echoes a busy peer may answer next time (echo_retry), with a fake engine and clock."""
from __future__ import annotations

import pytest

from ansible_collections.dicom.network.plugins.module_utils.echo_retry import retryable, run_with_retries
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import EchoInputError, validate_request

BUSY = {"result": "transient", "source": "service-provider-presentation", "reason": "local-limit-exceeded"}
REFUSED_US = {"result": "permanent", "source": "service-user", "reason": "calling-ae-title-not-recognized"}


def _result(name, outcome, ok, reject=None, phase="associate"):
    return {"name": name, "outcome": outcome, "ok": ok, "reject": reject, "phase": phase,
            "message": "%s said %s" % (name, outcome), "started_at": "t"}


@pytest.mark.parametrize("result, expected", [
    (_result("a", "timeout", False), True),
    (_result("a", "rejected", False, BUSY), True),
    (_result("a", "rejected", False, dict(BUSY, source="service-provider-acse")), False),
    (_result("a", "rejected", False, REFUSED_US), False),
    (_result("a", "refused", False, phase="connect"), False),
    (_result("a", "timeout", True, phase="connect"), False),  # expect: blocked, met
    (_result("a", "service_rejected", False), False),
])
def test_only_an_unexpected_timeout_or_a_busy_provider_is_retried(result, expected):
    assert retryable(result) is expected


def _request(retries, names=("a", "b", "c")):
    return validate_request({"retries": retries, "retry_delay": 1.5, "peers": [
        {"name": name, "ae_title": "X", "host": "127.0.0.1", "port": 104} for name in names]})


class FakeEngine:
    """Answers each round from a script: {peer name: [outcome of attempt 1, 2, ...]}."""

    def __init__(self, script):
        self.script, self.rounds = script, []

    def __call__(self, request):
        self.rounds.append([peer.name for peer in request.peers])
        answers = []
        for peer in request.peers:
            outcome = self.script[peer.name][sum(peer.name in r for r in self.rounds) - 1]
            answers.append(_result(peer.name, outcome, outcome == "success", BUSY if outcome == "rejected" else None))
        return answers


def test_retries_run_the_retryable_peers_together_after_the_delay_and_keep_every_attempt():
    engine, slept = FakeEngine({"a": ["success"], "b": ["rejected", "timeout", "success"],
                                "c": ["timeout", "timeout", "timeout"]}), []
    results = run_with_retries(_request(2), engine, slept.append)
    assert engine.rounds == [["a", "b", "c"], ["b", "c"], ["b", "c"]] and slept == [1.5, 1.5]
    a, b, c = results
    assert (a["attempts"], a["earlier_attempts"], a["message"]) == (1, [], "a said success")
    assert (b["outcome"], b["ok"], b["attempts"]) == ("success", True, 3)
    assert [attempt["outcome"] for attempt in b["earlier_attempts"]] == ["rejected", "timeout"]
    assert b["earlier_attempts"][0] == {"outcome": "rejected", "phase": "associate", "message": "b said rejected",
                                        "started_at": "t"}
    assert b["message"] == "b said success; ok after retry (attempt 3; first: rejected during associate)"
    assert (c["outcome"], c["attempts"], len(c["earlier_attempts"])) == ("timeout", 3, 2)
    assert c["message"] == "c said timeout; 3 attempts, the earlier: timeout during associate, timeout during associate"


def test_no_retries_by_default_and_none_when_nothing_is_retryable():
    engine, slept = FakeEngine({"a": ["rejected"], "b": ["success"], "c": ["success"]}), []
    assert [r["attempts"] for r in run_with_retries(_request(0), engine, slept.append)] == [1, 1, 1]
    engine, slept = FakeEngine({"a": ["success"], "b": ["success"], "c": ["success"]}), []
    run_with_retries(_request(3), engine, slept.append)
    assert (engine.rounds, slept) == ([["a", "b", "c"]], [])


@pytest.mark.parametrize("params, message", [
    ({"retries": 6}, "retries must be between 0 and 5, got 6"),
    ({"retries": "1"}, "retries must be an integer, got '1'"),
    ({"retry_delay": -1}, "retry_delay must be a positive number of seconds, got -1"),
    ({"retry_delay": 601}, "retry_delay must be at most 600 seconds, got 601"),
])
def test_retry_options_are_checked(params, message):
    with pytest.raises(EchoInputError, match="^%s$" % message.replace("(", r"\(")):
        validate_request(dict(params, host="127.0.0.1", called_ae_title="X"))
