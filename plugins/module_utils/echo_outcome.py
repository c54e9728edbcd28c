# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outcome classification for one C-ECHO attempt, free of pynetdicom and Ansible.

The echo engine records what it *observed* on the wire in an :class:`Observation`;
:func:`classify` turns that into exactly one outcome, the phase where it was decided and
a one-line message. Keeping this pure lets every branch be unit-tested without a peer.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

OUTCOMES = (
    "success",
    "service_rejected",
    "rejected",
    "context_rejected",
    "status_failure",
    "aborted",
    "timeout",
    "refused",
    "unreachable",
    "dns_error",
    "tls_error",
    "protocol_error",
)
PHASES = ("resolve", "connect", "tls", "associate", "echo", "release")
EXPECTATIONS = ("accept", "reject", "blocked")

# The peer was reached at the DICOM level and turned this caller away.
_DICOM_REFUSALS = frozenset(("rejected", "aborted", "context_rejected", "status_failure"))
_NO_TCP_PATH = frozenset(("refused", "unreachable"))

REJECT_RESULTS = {1: "permanent", 2: "transient"}
REJECT_SOURCES = {1: "service-user", 2: "service-provider-acse", 3: "service-provider-presentation"}
REJECT_REASONS = {
    1: {1: "no-reason-given", 2: "application-context-name-not-supported",
        3: "calling-ae-title-not-recognized", 7: "called-ae-title-not-recognized"},
    2: {1: "no-reason-given", 2: "protocol-version-not-supported"},
    3: {1: "temporary-congestion", 2: "local-limit-exceeded"},
}
ABORT_SOURCES = {0: "service-user", 1: "reserved", 2: "service-provider"}
ABORT_REASONS = {
    0: "reason-not-specified", 1: "unrecognized-pdu", 2: "unexpected-pdu",
    4: "unrecognized-pdu-parameter", 5: "unexpected-pdu-parameter",
    6: "invalid-pdu-parameter-value",
}
CONTEXT_RESULTS = {
    0: "acceptance", 1: "user-rejection", 2: "no-reason",
    3: "abstract-syntax-not-supported", 4: "transfer-syntaxes-not-supported",
}
ECHO_STATUS_MEANINGS = {
    0x0122: "SOP class not supported",
    0x0210: "duplicate invocation",
    0x0211: "unrecognized operation",
    0x0212: "mistyped argument",
}

_UNREACHABLE_ERRNOS = frozenset(
    getattr(errno, name) for name in ("EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN")
    if hasattr(errno, name)
)


@dataclass
class Observation:
    """Everything the engine saw during one association attempt, in wire terms."""

    host: str
    port: int
    called_ae_title: str
    calling_ae_title: str
    tls_setup_error: Optional[str] = None  # a TLS file of this host unusable: nothing was sent
    dns_error: Optional[str] = None
    connect_error: Optional[BaseException] = None
    connect_error_phase: str = "connect"  # "connect" or "tls"
    timed_out_phase: Optional[str] = None
    timeout_s: Optional[float] = None
    reject: Optional[Dict[str, int]] = None  # raw result / source / diagnostic codes
    accepted: bool = False
    context_result: Optional[int] = None  # Verification context result from the A-ASSOCIATE-AC
    peer_abort: Optional[Dict[str, Optional[int]]] = None  # A-ABORT PDU from the peer
    peer_closed_phase: Optional[str] = None  # TCP closed by the peer without an A-ABORT
    tls_verified: Optional[bool] = None  # None: plain TCP; False: TLS without certificate verification
    tls_client_certificate: bool = False  # a client certificate was offered (tls.cert_file set)
    tls_alert: Optional[str] = None  # a TLS alert read after the handshake (TLS 1.3 client certificate checks)
    tls_alert_phase: Optional[str] = None
    pdus_received: int = 0  # DICOM PDUs decoded from the peer
    protocol_violation: Optional[str] = None
    protocol_violation_phase: Optional[str] = None
    statuses: List[int] = field(default_factory=list)  # C-ECHO-RSP statuses, in order
    # Earlier addresses of the host name whose TCP connect failed, as "address (outcome)".
    addresses_tried: List[str] = field(default_factory=list)
    echo_failed_without_status: bool = False
    release_problem: Optional[str] = None
    count: int = 1

    @classmethod
    def of_peer(cls, spec: Any, count: int) -> "Observation":
        """A new observation of the echo's peer (an echo_validation.PeerSpec), ``count`` echoes asked."""
        return cls(host=spec.host, port=spec.port, called_ae_title=spec.ae_title,
                   calling_ae_title=spec.calling_ae_title, count=count,
                   tls_verified=spec.tls.verify if spec.tls.enabled else None,
                   tls_client_certificate=bool(spec.tls.enabled and spec.tls.cert_file))


@dataclass
class Classification:
    outcome: str
    phase: str
    message: str
    status: Optional[int] = None
    reject: Optional[Dict[str, str]] = None


def reject_details(result: int, source: int, diagnostic: int) -> Dict[str, str]:
    """Translate A-ASSOCIATE-RJ codes into the standard's words, keeping unknown codes visible."""
    return {
        "result": REJECT_RESULTS.get(result, "unknown-%d" % result),
        "source": REJECT_SOURCES.get(source, "unknown-%d" % source),
        "reason": REJECT_REASONS.get(source, {}).get(diagnostic, "unknown-%d" % diagnostic),
    }


def _provider_reject_hint(details: Dict[str, str]) -> str:
    if not refused_by_provider(details):
        return ""
    if details["source"] == "service-provider-presentation":
        return ("; the peer is busy (its association limit or load), which is no decision about this caller: "
                "retry, or lower parallel (and forks) so fewer associations reach it at once")
    return "; the peer's DICOM service provider turned the association away, which is no decision about this caller"


def describe_status(status: int) -> str:
    meaning = ECHO_STATUS_MEANINGS.get(status)
    if meaning is None:
        if 0xA000 <= status <= 0xAFFF or 0xC000 <= status <= 0xCFFF:
            meaning = "failure"
        elif 0xB000 <= status <= 0xBFFF:
            meaning = "warning"
        elif 0xFF00 <= status <= 0xFF01:
            meaning = "pending"
        else:
            meaning = "non-success status"
    return "0x%04X (%s)" % (status, meaning)


def _describe_connect_error(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text.replace("\n", " ")


def classify_connect_error(exc: BaseException, phase: str) -> str:
    """Map an exception from TCP connect or TLS handshake to an outcome."""
    if isinstance(exc, ssl.SSLError) or isinstance(exc, ssl.CertificateError):
        return "tls_error"
    if isinstance(exc, socket.timeout):
        return "timeout"
    if phase == "tls":
        # A reset or EOF in the middle of a handshake is a TLS failure, not a routing one.
        return "tls_error"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return "unreachable"
    if isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
        return "timeout"
    return "unreachable"


def classify(obs: Observation) -> Classification:
    """Decide the single outcome of one echo from what was observed, most specific first.

    When earlier addresses of the host name could not be connected to, the message says so: the
    outcome is the last address's, and only it was reached (or not).
    """
    verdict = _classify(obs)
    if obs.addresses_tried:
        verdict.message += "; tried before: %s" % ", ".join(obs.addresses_tried)
    return verdict


def _classify(obs: Observation) -> Classification:
    where = "%s:%s" % (obs.host, obs.port)
    if obs.tls_setup_error is not None:
        return Classification("tls_error", "tls",
                              "TLS not set up, no connection made to %s: %s" % (where, obs.tls_setup_error))
    if obs.dns_error is not None:
        return Classification("dns_error", "resolve",
                              "cannot resolve host '%s': %s" % (obs.host, obs.dns_error))
    if isinstance(obs.connect_error, ConnectionResetError) and obs.connect_error_phase == "connect":
        # ECONNRESET from connect(): the handshake completed (an RST to our SYN is ECONNREFUSED),
        # then the peer reset the connection. The TCP path exists: the peer turned us away.
        return Classification("aborted", "associate",
                              "peer at %s accepted the TCP connection and reset it at once, "
                              "before any A-ASSOCIATE answer%s" % (where, _bare_close(obs)))
    if obs.connect_error is not None:
        outcome = classify_connect_error(obs.connect_error, obs.connect_error_phase)
        detail = _describe_connect_error(obs.connect_error)
        if outcome == "refused":
            message = "TCP connection to %s refused (no listener on that port)" % where
        elif outcome == "timeout":
            message = "%s to %s timed out after %s s" % (
                "TLS handshake" if obs.connect_error_phase == "tls" else "TCP connect", where,
                _seconds(obs.timeout_s))
        elif outcome == "tls_error":
            message = "TLS handshake with %s failed: %s%s" % (
                where, detail, _tls_handshake_hint(detail, obs.tls_client_certificate))
        else:
            message = "%s is unreachable: %s" % (where, detail)
        return Classification(outcome, obs.connect_error_phase, message)
    if obs.protocol_violation is not None:
        return Classification(
            "protocol_error", obs.protocol_violation_phase or "associate",
            "peer at %s does not speak DICOM here: %s" % (where, obs.protocol_violation))
    if obs.reject is not None:
        details = reject_details(obs.reject["result"], obs.reject["source"], obs.reject["diagnostic"])
        return Classification(
            "rejected", "associate",
            "A-ASSOCIATE-RJ (rejected-%s, source %s, reason %s) for calling AE '%s' -> called AE '%s'%s"
            % (details["result"], details["source"], details["reason"],
               obs.calling_ae_title, obs.called_ae_title, _provider_reject_hint(details)),
            reject=details)
    if obs.tls_alert is not None and len(obs.statuses) < obs.count:
        return Classification("tls_error", obs.tls_alert_phase or "associate",
                              "peer at %s ended the TLS session during %s with an alert: %s%s"
                              % (where, obs.tls_alert_phase or "associate", obs.tls_alert,
                                 _tls_alert_hint(obs.tls_alert, obs.tls_client_certificate)))
    if obs.accepted and obs.context_result not in (None, 0):
        return Classification(
            "context_rejected", "associate",
            "association accepted but the Verification presentation context was rejected (%s)"
            % CONTEXT_RESULTS.get(obs.context_result, "result %s" % obs.context_result))
    if obs.accepted and obs.context_result is None and not obs.statuses and obs.timed_out_phase is None \
            and obs.peer_abort is None and obs.peer_closed_phase is None:
        return Classification(
            "context_rejected", "associate",
            "association accepted but the peer returned no result for the Verification context")
    failed_status = next((s for s in obs.statuses if s != 0x0000), None)
    if failed_status is not None:
        return Classification("status_failure", "echo",
                              "C-ECHO-RSP status %s" % describe_status(failed_status),
                              status=failed_status)
    if obs.timed_out_phase is not None and len(obs.statuses) < obs.count:
        return Classification("timeout", obs.timed_out_phase, _timeout_message(obs))
    if obs.peer_abort is not None and len(obs.statuses) < obs.count:
        phase = obs.peer_abort.get("phase") or "associate"
        source = ABORT_SOURCES.get(obs.peer_abort.get("source"), "unknown")
        reason_code = obs.peer_abort.get("reason")
        reason = ABORT_REASONS.get(reason_code, "reason-not-specified") if source == "service-provider" \
            else "reason-not-specified"
        return Classification("aborted", str(phase),
                              "peer sent A-ABORT (source %s, %s) during %s" % (source, reason, phase))
    if obs.peer_closed_phase is not None and len(obs.statuses) < obs.count:
        return Classification("aborted", obs.peer_closed_phase,
                              "peer closed the TCP connection during %s without an A-ABORT%s"
                              % (obs.peer_closed_phase, "" if obs.pdus_received else _bare_close(obs)))
    if len(obs.statuses) < obs.count or obs.echo_failed_without_status:
        phase = "echo" if obs.accepted else "associate"
        return Classification("aborted", phase,
                              "association ended before a C-ECHO-RSP was received (%d of %d)"
                              % (len(obs.statuses), obs.count))
    message = "C-ECHO success (0x0000)"
    if obs.count > 1:
        message = "%d C-ECHO requests answered with success (0x0000)" % obs.count
    if obs.release_problem:
        message += "; " + obs.release_problem
    if obs.tls_verified is False:
        # The documentation's warning, where the result is read: nothing proves who answered.
        message += "; TLS certificate not verified (tls.verify false)"
    return Classification("success", "release", message, status=0x0000)


# A message names this many refused services at most; the result's services list has them all.
_NAMED_SERVICES = 10


def with_services(verdict: Classification, services: List[Dict[str, Any]]) -> Classification:
    """A successful echo whose peer refused a required service (a result of echo_services) is
    ``service_rejected``: the route answers, but not for what it is needed for."""
    refused = [s for s in services if s["required"] and not s["accepted"]]
    required = sum(1 for s in services if s["required"])
    if verdict.outcome != "success":
        return verdict
    if not refused:
        discovered = len(services) - required
        if required:
            verdict.message += "; %d required service(s) accepted" % required
        if discovered:
            verdict.message += "; discovery: %d of %d SOP class(es) accepted" % (
                sum(1 for s in services if not s["required"] and s["accepted"]), discovered)
        return verdict
    named = ", ".join("%s (%s)" % (s["sop_class"], s["result"] or "not answered") for s in refused[:_NAMED_SERVICES])
    if len(refused) > _NAMED_SERVICES:
        named += " and %d more (see services)" % (len(refused) - _NAMED_SERVICES)
    message = "C-ECHO success, but %d of %d required service(s) refused: %s" % (len(refused), required, named)
    return Classification("service_rejected", "associate", message, status=verdict.status)


def _tls_alert_hint(alert: str, client_certificate: bool = False) -> str:
    text = alert.upper()
    if "CERTIFICATE_REQUIRED" in text or ("HANDSHAKE_FAILURE" in text and not client_certificate):
        return " (the peer wants a client certificate: set tls.cert_file and tls.key_file)"
    if "HANDSHAKE_FAILURE" in text:
        return (" (the peer refused the handshake: it does not accept our client certificate, or the two sides"
                " share no cipher)")
    if any(word in text for word in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "DECRYPT_ERROR",
                                     "ACCESS_DENIED", "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED")):
        return " (the peer does not accept our client certificate)"
    return ""


def _tls_handshake_hint(detail: str, client_certificate: bool = False) -> str:
    """What a failed handshake most likely means; TLS 1.2 servers refuse client certificates here."""
    text = detail.upper()
    if "MISMATCH" in text or "NOT VALID FOR" in text:
        return (" (set tls.server_hostname to a name the certificate's subjectAltName lists; the certificate's"
                " CN alone is not accepted, unlike by DCMTK)")
    if "PROTOCOL_VERSION" in text or "UNSUPPORTED_PROTOCOL" in text:
        return " (no TLS version both sides allow: this client needs TLS 1.2 or newer)"
    if "ALERT_HANDSHAKE_FAILURE" in text and not client_certificate:
        return (" (most often the peer wants a client certificate: set tls.cert_file and tls.key_file; else the"
                " two sides share no cipher)")
    if "ALERT" in text:
        return _tls_alert_hint(detail, client_certificate)
    return ""


# Some servers turn unknown callers away like this; so does a proxy whose backend is down.
_BARE_CLOSE = (" and without any DICOM PDU (how some servers refuse unknown callers, but also what a "
               "proxy or load balancer without a working backend does")


def _bare_close(obs: Observation) -> str:
    # A TLS-only port that gets plain DICOM may close just as silently.
    return _BARE_CLOSE + (", or a port that expects DICOM over TLS)" if obs.tls_verified is None else ")")


def _seconds(value: Optional[float]) -> str:
    if value is None:
        return "?"
    return ("%g" % value)


def _timeout_message(obs: Observation) -> str:
    waited_for = {
        "resolve": "name resolution",
        "connect": "TCP connect",
        "tls": "TLS handshake",
        "associate": "A-ASSOCIATE response",
        "echo": "C-ECHO response",
        "release": "A-RELEASE response",
    }.get(obs.timed_out_phase or "", obs.timed_out_phase)
    if obs.timed_out_phase in ("resolve", "connect", "tls"):
        return "%s to %s:%s timed out after %s s" % (waited_for, obs.host, obs.port, _seconds(obs.timeout_s))
    message = "no %s from %s:%s within %s s" % (waited_for, obs.host, obs.port, _seconds(obs.timeout_s))
    if obs.timed_out_phase == "echo" and obs.count > 1:
        message += " (request %d of %d; %d answered before)" % (len(obs.statuses) + 1, obs.count, len(obs.statuses))
    return message


def refused_by_provider(reject: Optional[Dict[str, str]]) -> bool:
    """Whether an A-ASSOCIATE-RJ came from the peer's DICOM service provider, not its application.

    Those rejections (temporary congestion, local limit exceeded, protocol version) say the peer is
    busy or speaks another protocol version; they are no decision about the calling AE.
    """
    return reject is not None and reject.get("source") != "service-user"


def expectation_met(expect: str, outcome: str, phase: str, reject: Optional[Dict[str, str]] = None) -> bool:
    """Whether an outcome is what the peer's ``expect`` asked for.

    ``reject`` needs proof that the peer itself refused the caller, so a network failure never
    satisfies it, nor does a rejection by the peer's service provider (``reject``: the details of
    an A-ASSOCIATE-RJ); ``blocked`` is the firewall check and needs the TCP path itself to be absent.
    """
    if expect == "accept":
        return outcome == "success"
    if expect == "reject":
        return outcome in _DICOM_REFUSALS and not (outcome == "rejected" and refused_by_provider(reject))
    if expect == "blocked":
        return outcome in _NO_TCP_PATH or (outcome == "timeout" and phase == "connect")
    raise ValueError("unknown expectation %r" % (expect,))


def rtt_statistics(samples_ms: List[float]) -> Optional[Dict[str, float]]:
    if not samples_ms:
        return None
    return {
        "min": round(min(samples_ms), 3),
        "avg": round(sum(samples_ms) / len(samples_ms), 3),
        "max": round(max(samples_ms), 3),
    }


def summarize(results: List[Dict[str, Any]], duration_ms: float) -> Dict[str, Any]:
    by_outcome: Dict[str, int] = {}
    for result in results:
        by_outcome[result["outcome"]] = by_outcome.get(result["outcome"], 0) + 1
    ok = sum(1 for result in results if result["ok"])
    return {
        "total": len(results),
        "ok": ok,
        "failed": len(results) - ok,
        "by_outcome": dict(sorted(by_outcome.items())),
        "duration_ms": round(duration_ms, 3),
    }


def summary_message(results: List[Dict[str, Any]]) -> str:
    """One line naming every peer whose outcome differs from its expectation."""
    failing = [r for r in results if not r["ok"]]
    if not failing:
        return "all %d peer(s) answered as expected" % len(results)
    # A success has no phase worth naming ("success during release" reads as a problem in release).
    parts = ["%s (%s%s%s, expected %s)" % (
        r["name"], r["outcome"], " by the peer's service provider" if refused_by_provider(r.get("reject")) else "",
        "" if r["outcome"] == "success" else " during %s" % r["phase"], r["expect"]) for r in failing]
    return "%d of %d peer(s) not as expected: %s" % (len(failing), len(results), "; ".join(parts))
