"""Outcome classification and expectation matching, from observations alone."""
from __future__ import annotations

import errno
import socket
import ssl

import pytest

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import (
    OUTCOMES,
    Observation,
    classify,
    describe_status,
    expectation_met,
    rtt_statistics,
    summarize,
    summary_message,
)


def obs(**fields):
    base = dict(host="10.0.0.1", port=104, called_ae_title="PACS", calling_ae_title="CT1")
    base.update(fields)
    return Observation(**base)


@pytest.mark.parametrize(
    "observation, outcome, phase",
    [
        (obs(dns_error="Name or service not known"), "dns_error", "resolve"),
        (obs(tls_setup_error="tls.ca_file: file /x does not exist"), "tls_error", "tls"),
        (obs(connect_error=ConnectionRefusedError(errno.ECONNREFUSED, "refused")), "refused", "connect"),
        (obs(connect_error=OSError(errno.EHOSTUNREACH, "No route to host")), "unreachable", "connect"),
        (obs(connect_error=OSError(errno.ENETUNREACH, "Network is unreachable")), "unreachable", "connect"),
        (obs(connect_error=socket.timeout("timed out"), timeout_s=5), "timeout", "connect"),
        (obs(connect_error=socket.timeout("timed out"), connect_error_phase="tls"), "timeout", "tls"),
        (obs(connect_error=ssl.SSLError(1, "CERTIFICATE_VERIFY_FAILED"), connect_error_phase="tls"),
         "tls_error", "tls"),
        (obs(connect_error=ConnectionResetError(errno.ECONNRESET, "reset"), connect_error_phase="tls"),
         "tls_error", "tls"),
        (obs(reject={"result": 1, "source": 1, "diagnostic": 7}), "rejected", "associate"),
        (obs(accepted=True, context_result=3), "context_rejected", "associate"),
        (obs(accepted=True), "context_rejected", "associate"),
        (obs(accepted=True, context_result=0, statuses=[0x0122]), "status_failure", "echo"),
        (obs(accepted=True, context_result=0, statuses=[0]), "success", "release"),
        (obs(accepted=True, context_result=0, timed_out_phase="echo", timeout_s=10), "timeout", "echo"),
        (obs(timed_out_phase="associate", timeout_s=10), "timeout", "associate"),
        (obs(peer_abort={"source": 0, "reason": 0, "phase": "associate"}), "aborted", "associate"),
        (obs(accepted=True, context_result=0, peer_abort={"source": 2, "reason": 1, "phase": "echo"}),
         "aborted", "echo"),
        (obs(peer_closed_phase="associate"), "aborted", "associate"),
        # The alert comes first; pynetdicom then sees the transport close.
        (obs(tls_alert="TLSV13_ALERT_CERTIFICATE_REQUIRED", tls_alert_phase="associate", peer_closed_phase="associate"),
         "tls_error", "associate"),
        (obs(protocol_violation="unknown PDU type 0x48", protocol_violation_phase="associate"),
         "protocol_error", "associate"),
        (obs(accepted=True, context_result=0, statuses=[0, 0], count=3, timed_out_phase="echo"), "timeout", "echo"),
        (obs(accepted=True, context_result=0, statuses=[0], release_problem="no A-RELEASE-RP",
             timed_out_phase="release"), "success", "release"),
    ],
)
def test_classification(observation, outcome, phase):
    verdict = classify(observation)
    assert (verdict.outcome, verdict.phase) == (outcome, phase)
    assert verdict.outcome in OUTCOMES
    assert verdict.message and "\n" not in verdict.message


def test_reject_uses_the_standards_words():
    verdict = classify(obs(reject={"result": 2, "source": 3, "diagnostic": 2}))
    assert verdict.reject == {"result": "transient", "source": "service-provider-presentation",
                              "reason": "local-limit-exceeded"}
    verdict = classify(obs(reject={"result": 1, "source": 1, "diagnostic": 3}))
    assert verdict.reject["reason"] == "calling-ae-title-not-recognized"
    assert "calling AE 'CT1'" in verdict.message


@pytest.mark.parametrize("result, source, diagnostic, met", [
    (1, 1, 3, True),    # the application refused the calling AE
    (1, 1, 7, True),
    (2, 1, 1, True),    # transient, but the application's decision
    (2, 3, 2, False),   # local limit exceeded: the peer is busy, whoever calls
    (2, 3, 1, False),   # temporary congestion
    (1, 2, 2, False),   # protocol version not supported
])
def test_reject_is_met_only_by_the_peers_application_refusing(result, source, diagnostic, met):
    verdict = classify(obs(reject={"result": result, "source": source, "diagnostic": diagnostic}))
    assert verdict.outcome == "rejected"
    assert expectation_met("reject", verdict.outcome, verdict.phase, verdict.reject) is met
    assert expectation_met("accept", verdict.outcome, verdict.phase, verdict.reject) is False
    assert ("no decision about this caller" in verdict.message) is (not met)


def test_a_busy_peer_says_what_to_lower():
    verdict = classify(obs(reject={"result": 2, "source": 3, "diagnostic": 2}))
    line = summary_message([{"name": "pacs", "outcome": "rejected", "phase": "associate", "expect": "reject",
                             "ok": False, "reject": verdict.reject}])
    assert line == ("1 of 1 peer(s) not as expected: pacs (rejected by the peer's service provider during "
                    "associate, expected reject)")
    assert verdict.message.endswith("the peer is busy (its association limit or load), which is no decision about "
                                    "this caller: retry, or lower parallel (and forks) so fewer associations reach it "
                                    "at once")


@pytest.mark.parametrize("text, hint", [
    ("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure (_ssl.c:1006)",
     "most often the peer wants a client certificate"),
    ("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:1006)", "the peer does not accept our client certificate"),
    ("[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version (_ssl.c:1006)", "needs TLS 1.2 or newer"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch, certificate is not valid for "
     "'127.0.0.1'. (_ssl.c:1006)", "set tls.server_hostname to a name the certificate's subjectAltName lists"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate", None),
])
def test_a_failed_handshake_says_what_it_most_likely_means(text, hint):
    verdict = classify(obs(connect_error=ssl.SSLError(1, text), connect_error_phase="tls"))
    assert (verdict.outcome, verdict.phase) == ("tls_error", "tls")
    assert verdict.message.startswith("TLS handshake with 10.0.0.1:104 failed: %s" % text), verdict.message
    if hint is None:
        assert "(" not in verdict.message[len("TLS handshake with 10.0.0.1:104 failed: ") + len(text):]
    else:
        assert hint in verdict.message


def test_a_refused_handshake_with_a_client_certificate_does_not_ask_for_one():
    text = "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure (_ssl.c:1006)"
    verdict = classify(obs(connect_error=ssl.SSLError(1, text), connect_error_phase="tls", tls_client_certificate=True))
    assert verdict.message.endswith("(the peer refused the handshake: it does not accept our client certificate, or the "
                                    "two sides share no cipher)"), verdict.message
    alert = classify(obs(tls_alert="[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] handshake failure", tls_alert_phase="associate",
                         tls_client_certificate=True, accepted=False))
    assert "ended the TLS session" in alert.message and "the peer refused the handshake" in alert.message, alert.message


def test_unknown_reject_codes_stay_visible():
    verdict = classify(obs(reject={"result": 9, "source": 1, "diagnostic": 42}))
    assert verdict.reject == {"result": "unknown-9", "source": "service-user", "reason": "unknown-42"}


def test_status_is_reported_in_hex_with_its_meaning():
    assert describe_status(0x0122) == "0x0122 (SOP class not supported)"
    assert describe_status(0xC000) == "0xC000 (failure)"
    verdict = classify(obs(accepted=True, context_result=0, statuses=[0xA700]))
    assert verdict.status == 0xA700 and "0xA700" in verdict.message


@pytest.mark.parametrize(
    "expect, outcome, phase, met",
    [
        ("accept", "success", "release", True),
        ("accept", "rejected", "associate", False),
        ("reject", "rejected", "associate", True),
        ("reject", "aborted", "echo", True),
        ("reject", "context_rejected", "associate", True),
        ("reject", "status_failure", "echo", True),
        ("reject", "refused", "connect", False),
        ("reject", "timeout", "associate", False),
        ("reject", "dns_error", "resolve", False),
        ("reject", "success", "release", False),
        ("blocked", "refused", "connect", True),
        ("blocked", "unreachable", "connect", True),
        ("blocked", "timeout", "connect", True),
        ("blocked", "timeout", "associate", False),
        ("blocked", "success", "release", False),
        ("blocked", "dns_error", "resolve", False),
    ],
)
def test_expectations(expect, outcome, phase, met):
    assert expectation_met(expect, outcome, phase) is met


def test_every_outcome_meets_exactly_the_expectations_the_issue_defines():
    for outcome in OUTCOMES:
        assert expectation_met("accept", outcome, "connect") is (outcome == "success")


def test_statistics_and_summary():
    assert rtt_statistics([]) is None
    assert rtt_statistics([1.0, 2.0, 6.0]) == {"min": 1.0, "avg": 3.0, "max": 6.0}
    results = [
        {"name": "a", "outcome": "success", "ok": True, "phase": "release", "expect": "accept"},
        {"name": "b", "outcome": "refused", "ok": False, "phase": "connect", "expect": "accept"},
    ]
    summary = summarize(results, 12.34567)
    assert summary == {"total": 2, "ok": 1, "failed": 1, "by_outcome": {"refused": 1, "success": 1},
                       "duration_ms": 12.346}
    assert summary_message(results) == "1 of 2 peer(s) not as expected: b (refused during connect, expected accept)"
    assert summary_message(results[:1]) == "all 1 peer(s) answered as expected"
    unwanted = dict(results[0], name="c", outcome="success", phase="release", expect="reject", ok=False)
    assert summary_message([unwanted]) == "1 of 1 peer(s) not as expected: c (success, expected reject)"


def test_a_close_without_any_dicom_pdu_says_what_else_it_could_be():
    bare = classify(obs(peer_closed_phase="associate"))
    reset = classify(obs(connect_error=ConnectionResetError(errno.ECONNRESET, "reset")))
    after_accept = classify(obs(accepted=True, context_result=0, peer_closed_phase="echo", pdus_received=1))
    for verdict in (bare, reset):
        assert verdict.outcome == "aborted"
        assert "without any DICOM PDU" in verdict.message and "load balancer" in verdict.message
    assert after_accept.outcome == "aborted"
    assert "DICOM PDU" not in after_accept.message
    # Plain DICOM to a TLS-only port ends the same way; over TLS that cannot be the cause.
    assert bare.message.endswith("does, or a port that expects DICOM over TLS)")
    over_tls = classify(obs(peer_closed_phase="associate", tls_verified=True))
    assert over_tls.message.endswith("without a working backend does)")


def test_a_timeout_within_several_requests_says_which_one():
    verdict = classify(obs(accepted=True, context_result=0, statuses=[0, 0], count=200, timed_out_phase="echo",
                           timeout_s=2))
    assert verdict.message == "no C-ECHO response from 10.0.0.1:104 within 2 s (request 3 of 200; 2 answered before)"
    single = classify(obs(accepted=True, context_result=0, timed_out_phase="echo", timeout_s=2))
    assert single.message == "no C-ECHO response from 10.0.0.1:104 within 2 s"


def test_a_success_without_certificate_verification_says_so():
    echoed = dict(accepted=True, context_result=0, statuses=[0])
    assert classify(obs(**echoed, tls_verified=False)).message == \
        "C-ECHO success (0x0000); TLS certificate not verified (tls.verify false)"
    for verified in (True, None):
        assert classify(obs(**echoed, tls_verified=verified)).message == "C-ECHO success (0x0000)"
