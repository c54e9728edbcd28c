# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An Orthanc archive as the source of C-ECHOs, through its REST API, and its modality table
compared with the inventory's AE registry.

Orthanc echoes from its own AE, address and configuration: ``POST /modalities/{id}/echo`` for a
registered modality (with that entry's host, port, ``LocalAet`` and ``UseDicomTls``) and
``POST /tools/dicom-echo`` for any other AE. What it answers was measured against Orthanc 1.10.1
(Debian 12) for each kind of peer; :func:`classify_echo_answer` maps exactly those answers to the
outcomes of :mod:`echo_outcome` and keeps Orthanc's own text verbatim in every message. The
classification, the peer resolution and the drift comparison are pure functions; only
:class:`OrthancClient` does HTTP, through ansible-core's ``open_url``.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import re
import socket
import ssl
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import Classification, expectation_met
from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    EchoInputError,
    PeerSpec,
    ipv4_literal_problem,
    normalize_ae_title,
    type_name,
)

# Orthanc's echo "Timeout" must be an unsigned integer (a float is refused with HTTP 400,
# "Integer value expected in field: Timeout"; measured on 1.10.1).
ECHO_TIMEOUT_RANGE = (1, 3600)
PARALLEL_RANGE = (1, 32)
# Orthanc applies its echo Timeout to each DCMTK step (TCP connect, A-ASSOCIATE, C-ECHO, A-RELEASE).
# A peer that answers the C-ECHO just before the timeout made Orthanc answer after 2 x Timeout
# (measured: 6.03 s for Timeout 3), so the HTTP wait for an echo allows every step its full time.
ECHO_STEPS = 4
ORTHANC_PEER_KEYS = ("ae_title", "host", "port", "name", "expect", "calling_ae_title", "modality")
REGISTRY_KEYS_COMPARED = ("ae_title", "host", "port")


class OrthancApiError(Exception):
    """The REST API could not be used; the message names the URL and never a password."""


class OrthancHttpTimeout(OrthancApiError):
    """The API did not answer within the HTTP timeout."""


# --------------------------------------------------------------------------- input
def check_echo_timeout(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EchoInputError("timeout must be a whole number of seconds (Orthanc accepts no fractions), got %r"
                             % (value,))
    low, high = ECHO_TIMEOUT_RANGE
    if not low <= value <= high:
        raise EchoInputError("timeout must be between %d and %d seconds, got %d" % (low, high, value))
    return value


def check_http_timeout(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise EchoInputError("http_timeout must be a number of seconds, got %r" % (value,)) from None
    if isinstance(value, bool) or not 0 < seconds <= 3600:
        raise EchoInputError("http_timeout must be more than 0 and at most 3600 seconds, got %r" % (value,))
    return seconds


def check_parallel(value: Any) -> int:
    low, high = PARALLEL_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EchoInputError("parallel must be an integer between %d and %d, got %r" % (low, high, value))
    return value


def split_peers(peers: Optional[List[Any]]) -> Tuple[Optional[List[Any]], List[Optional[str]]]:
    """The peers without their ``modality`` key (for echo_validation.validate_request) and the modality ids."""
    if peers is None:
        return None, []
    if not isinstance(peers, list):
        raise EchoInputError("peers must be a list of dictionaries, got %s" % type_name(peers))
    plain: List[Any] = []
    modalities: List[Optional[str]] = []
    for index, raw in enumerate(peers):
        if not isinstance(raw, Mapping):
            plain.append(raw)  # validate_request names the mistake
            modalities.append(None)
            continue
        label = "peers[%d] (%s)" % (index, raw.get("name") or raw.get("ae_title"))
        unknown = sorted(map(str, set(raw) - set(ORTHANC_PEER_KEYS)))
        if unknown:
            raise EchoInputError("%s has unknown key(s) %s; valid keys are %s (Orthanc decides TLS from the "
                                 "modality's UseDicomTls, and negotiates Verification only)"
                                 % (label, ", ".join(unknown), ", ".join(ORTHANC_PEER_KEYS)))
        modality = raw.get("modality")
        if modality is not None and (not isinstance(modality, str) or not modality.strip()):
            raise EchoInputError("%s.modality must be the symbolic name of an Orthanc modality, got %r"
                                 % (label, modality))
        modalities.append(None if modality is None else modality.strip())
        plain.append({k: v for k, v in raw.items() if k != "modality"})
    return plain, modalities


def check_registry(registry: Any) -> Dict[str, Dict[str, Any]]:
    """The inventory's ``dicom_aes`` registry (name -> {ae_title, host, port, ...}), checked; other keys are kept."""
    if not isinstance(registry, Mapping):
        raise EchoInputError("registry must be a dictionary of AE name -> {ae_title, host, port}, got %s"
                             % type_name(registry))
    checked: Dict[str, Dict[str, Any]] = {}
    for name in sorted(registry, key=str):
        entry = registry[name]
        where = "registry.%s" % name
        if not isinstance(entry, Mapping):
            raise EchoInputError("%s must be a dictionary with ae_title, host and port, got %s"
                                 % (where, type_name(entry)))
        if entry.get("ae_title") is None:
            raise EchoInputError("%s.ae_title is required" % where)
        if entry.get("host") is None and entry.get("port") is None:
            # An AE that only calls (a modality that sends): known by its AE title alone.
            checked[str(name)] = dict(entry, ae_title=normalize_ae_title(entry["ae_title"], where + ".ae_title"),
                                      host=None, port=None)
            continue
        if entry.get("host") is None:
            raise EchoInputError("%s.host is required with port (leave both out for an AE that only calls)" % where)
        host = entry["host"]
        if not isinstance(host, str) or not host.strip() or any(ord(c) < 0x21 for c in host.strip()):
            raise EchoInputError("%s.host must be a host name or address without spaces, got %r" % (where, host))
        problem = ipv4_literal_problem(host.strip())
        if problem:
            raise EchoInputError("%s.host %s" % (where, problem))
        port = entry.get("port", 104)
        port = 104 if port is None else port
        try:
            port_number = int(str(port), 10) if not isinstance(port, bool) else None
        except ValueError:
            port_number = None
        if port_number is None or not 1 <= port_number <= 65535:
            raise EchoInputError("%s.port must be an integer between 1 and 65535, got %r" % (where, port))
        checked[str(name)] = dict(entry, ae_title=normalize_ae_title(entry["ae_title"], where + ".ae_title"),
                                  host=host.strip(), port=port_number)
    return checked


# --------------------------------------------------------------------------- HTTP
@dataclass
class OrthancClient:
    """Requests to one Orthanc REST API. ``opener`` is ``open_url`` (replaced in unit tests)."""

    url: str
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    validate_certs: bool = True
    ca_path: Optional[str] = None
    use_proxy: bool = True
    http_timeout: float = 10.0
    opener: Callable[..., Any] = field(default=open_url, repr=False)

    def request(self, method: str, path: str, body: Any = None,
                timeout: Optional[float] = None) -> Tuple[int, Dict[str, str], str]:
        """(HTTP status, headers, body text) of any answer, or OrthancApiError when there was none."""
        wait = self.http_timeout if timeout is None else timeout
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            # No redirects (the credentials must not follow them elsewhere) and no ~/.netrc (the
            # credentials are the ones given); the socket timeout bounds each wait for data, and Orthanc
            # sends nothing before its answer is complete.
            response = self.opener(
                self.url + path, data=data, headers=headers, method=method, use_proxy=self.use_proxy,
                timeout=wait, validate_certs=self.validate_certs, url_username=self.username,
                url_password=self.password, force_basic_auth=self.username is not None,
                follow_redirects="none", ca_path=self.ca_path, use_netrc=False)
            try:
                return response.getcode(), _headers(response), _text(response.read())
            finally:
                response.close()
        except urllib.error.HTTPError as exc:
            try:
                text = _text(exc.read())
            except (OSError, http.client.HTTPException):
                text = ""
            return exc.code, _headers(exc), text
        except (socket.timeout, TimeoutError) as exc:
            raise OrthancHttpTimeout(self._timeout_message(method, path, wait)) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise OrthancHttpTimeout(self._timeout_message(method, path, wait)) from exc
            raise OrthancApiError(self.connection_failure(exc.reason)) from exc
        except (UrlsConnectionError, OSError, http.client.HTTPException, ValueError) as exc:
            raise OrthancApiError(self.connection_failure(exc)) from exc

    def _timeout_message(self, method: str, path: str, wait: float) -> str:
        return "the Orthanc REST API at %s did not answer %s %s within %g s" % (self.url, method, path, wait)

    def connection_failure(self, reason: Any) -> str:
        """One line for a request that got no HTTP answer at all."""
        where = "the Orthanc REST API at %s" % self.url
        if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
            detail = getattr(reason, "verify_message", None) or str(reason)
            return ("cannot verify the TLS certificate of %s (%s): set ca_path to the CA certificate that signed it "
                    "(validate_certs: false turns the check off)" % (where, detail))
        if isinstance(reason, ssl.SSLError):
            return "TLS with %s failed: %s" % (where, reason)
        if isinstance(reason, ConnectionRefusedError):
            return "cannot reach %s: connection refused (no HTTP server on that port)" % where
        if isinstance(reason, (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)):
            hint = ""
            if self.url.startswith("https:"):
                hint = (" (Orthanc 1.10 of Debian 12 crashes on every HTTPS request when SslEnabled is set, "
                        "measured; put a TLS proxy in front of it)")
            elif isinstance(reason, http.client.BadStatusLine):
                hint = " (is it an HTTPS port? then use https://)"
            return "%s closed the connection without an HTTP answer%s" % (where, hint)
        if isinstance(reason, socket.gaierror):
            return "cannot resolve the host of %s: %s" % (where, reason.strerror or reason)
        if isinstance(reason, OSError):
            return "cannot reach %s: %s" % (where, reason.strerror or reason)
        return "cannot use %s: %s" % (where, reason)


def _headers(response: Any) -> Dict[str, str]:
    try:
        return {str(k).lower(): str(v) for k, v in response.headers.items()}
    except AttributeError:
        return {}


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return str(data or "")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def answer_problem(url: str, method: str, path: str, status: int, headers: Mapping[str, str], text: str) -> str:
    """One line for an HTTP answer that is not what an Orthanc API gives (401, 403, 404, HTML, ...)."""
    where = "the Orthanc REST API at %s" % url
    if status == 401:
        return ("%s refused the credentials (HTTP 401 on %s %s): check username and password"
                % (where, method, path))
    if status == 403:
        return ("%s forbids %s %s (HTTP 403): an Orthanc with RemoteAccessAllowed false only answers clients on its "
                "own host; run the task there (delegate_to) or allow this client" % (where, method, path))
    if 300 <= status < 400:
        return ("%s redirected %s %s (HTTP %d to %s); redirects are not followed, so that the credentials are sent "
                "to that URL only: point url at the API itself"
                % (where, method, path, status, headers.get("location", "?")))
    body = _json_or_none(text)
    if isinstance(body, Mapping) and "OrthancStatus" in body:
        hint = " (is url the API's base URL, without a path Orthanc does not serve?)" if status == 404 else ""
        return "%s answered %s %s with HTTP %d: %s%s" % (where, method, path, status, orthanc_error_text(body), hint)
    kind = headers.get("content-type") or "no content type"
    return ("%s is not an Orthanc REST API: %s %s answered HTTP %d (%s)%s"
            % (url, method, path, status, kind, _excerpt(text)))


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    if not flat:
        return ""
    return ": %s" % (flat[:limit] + ("..." if len(flat) > limit else ""))


def orthanc_error_text(body: Mapping[str, Any]) -> str:
    """Orthanc's error as it wrote it: Message (OrthancStatus N), then Details when there are some."""
    text = "%s (OrthancStatus %s)" % (body.get("Message") or body.get("OrthancError") or "error",
                                      body.get("OrthancStatus"))
    if body.get("Details"):
        text += ": %s" % body["Details"]
    return text


def read_json(client: OrthancClient, path: str) -> Any:
    status, headers, text = client.request("GET", path)
    if status != 200:
        raise OrthancApiError(answer_problem(client.url, "GET", path, status, headers, text))
    body = _json_or_none(text)
    if body is None:
        raise OrthancApiError(answer_problem(client.url, "GET", path, status, headers, text))
    return body


def read_system(client: OrthancClient) -> Dict[str, Any]:
    """``GET /system``: the archive's AE title, name and version; anything else is not an Orthanc."""
    body = read_json(client, "/system")
    if not isinstance(body, Mapping) or not isinstance(body.get("DicomAet"), str) or "Version" not in body:
        raise OrthancApiError("%s is not an Orthanc REST API: GET /system answered JSON without DicomAet and Version%s"
                              % (client.url, _excerpt(json.dumps(body))))
    return {"url": client.url, "ae_title": body["DicomAet"].strip(), "name": body.get("Name"),
            "version": str(body.get("Version")), "api_version": body.get("ApiVersion"),
            "dicom_port": body.get("DicomPort")}


def read_modalities(client: OrthancClient) -> Dict[str, Dict[str, Any]]:
    """``GET /modalities?expand``: modality id -> its configuration, as Orthanc uses it."""
    body = read_json(client, "/modalities?expand")
    if not isinstance(body, Mapping):
        raise OrthancApiError("the Orthanc REST API at %s answered GET /modalities?expand with %s, not an object of "
                              "modalities (an Orthanc older than 1.7?)" % (client.url, type_name(body)))
    return {str(k): dict(v) for k, v in body.items() if isinstance(v, Mapping)}


def modality_summary(entry: Mapping[str, Any]) -> Dict[str, Any]:
    """The keys of a modality that decide how Orthanc echoes it."""
    return {"ae_title": str(entry.get("AET", "")).strip(), "host": str(entry.get("Host", "")).strip(),
            "port": _int_or_none(entry.get("Port")), "local_ae_title": (entry.get("LocalAet") or "").strip() or None,
            "tls": bool(entry.get("UseDicomTls", False))}


def _int_or_none(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- classification
# Orthanc 1.10 prefixes DCMTK's text with the step that failed.
_CONNECTING = re.compile(r'^DicomAssociation - connecting to AET "(?P<aet>[^"]*)": (?P<text>.*)$', re.S)
_ECHOING = re.compile(r'^DicomAssociation - C-ECHO to AET "(?P<aet>[^"]*)": (?P<text>.*)$', re.S)
# (pattern on DCMTK's text, outcome, phase, our words), for the connecting step; measured on 1.10.1.
_CONNECT_TEXTS = (
    (re.compile(r"^TCP Initialization Error: Connection refused"), "refused", "connect",
     "TCP connection from Orthanc to the peer refused (no listener on that port)"),
    (re.compile(r"^TCP Initialization Error: Operation now in progress \(Timeout\)"), "timeout", "connect",
     "TCP connect from Orthanc to the peer timed out after {timeout} s"),
    (re.compile(r"^TCP Initialization Error: (No route to host|Network is unreachable|Host is down|Network is down)"),
     "unreachable", "connect", "the peer is unreachable from Orthanc"),
    (re.compile(r"^TCP Initialization Error: Connection reset by peer"), "aborted", "associate",
     "the peer accepted Orthanc's TCP connection and reset it before any A-ASSOCIATE answer"),
    (re.compile(r"^Attempt to connect to unknown host"), "dns_error", "resolve",
     "Orthanc cannot resolve the peer's host"),
    (re.compile(r"^TLS error"), "tls_error", "tls", "the TLS handshake between Orthanc and the peer failed"),
    (re.compile(r"^DUL Association Rejected"), "rejected", "associate",
     "the peer rejected Orthanc's association (A-ASSOCIATE-RJ); Orthanc reports neither the reason nor the source, "
     "so a wrong calling AE, a wrong called AE and a busy peer read the same"),
    (re.compile(r"^DUL network read timeout"), "timeout", "associate",
     "no A-ASSOCIATE answer to Orthanc within {timeout} s"),
    (re.compile(r"^Peer aborted Association"), "aborted", "associate",
     "the peer aborted or closed Orthanc's association before accepting it"),
    (re.compile(r"^Unrecognized PDU type"), "protocol_error", "associate",
     "the peer does not speak DICOM here (it answered Orthanc with something that is not a PDU)"),
)
_ECHO_TEXTS = (
    (re.compile(r"^DIMSE No data available"), "timeout", "echo", "no C-ECHO response to Orthanc within {timeout} s"),
    (re.compile(r"^Peer aborted Association"), "aborted", "echo", "the peer aborted the association at the C-ECHO"),
)
# OrthancStatus 2015 ("No acceptable presentation context for modality"): the peer accepted the
# association but not the Verification context (its A-ASSOCIATE-AC rejected every context).
NO_PRESENTATION_CONTEXT = 2015


@dataclass
class OrthancAnswer:
    """What Orthanc answered one echo request, and the verdict drawn from it."""

    verdict: Classification
    http_status: Optional[int]
    orthanc_status: Optional[int] = None
    details: Optional[str] = None
    error: Optional[str] = None


def classify_echo_answer(http_status: int, text: str, timeout_s: int) -> OrthancAnswer:
    """Map Orthanc's answer to an echo request to one outcome; Orthanc's own words end every message."""
    if http_status == 200:
        return OrthancAnswer(Classification("success", "release", "C-ECHO success (0x0000)", status=0), 200)
    body = _json_or_none(text) if text.strip() else None
    if http_status == 500 and not text.strip():
        # Orthanc answers an empty 500 when the C-ECHO-RSP status is not success: measured with
        # 0xC000 and 0x0122 (the association went fine; Orthanc logs nothing and keeps the status).
        return OrthancAnswer(Classification(
            "status_failure", "echo",
            "the peer answered Orthanc's C-ECHO with a non-success status; Orthanc does not say which "
            "(HTTP 500 with an empty body)"), http_status)
    if not isinstance(body, Mapping):
        return OrthancAnswer(Classification(
            "protocol_error", "echo",
            "Orthanc answered the echo request with HTTP %d and no JSON error%s" % (http_status, _excerpt(text))),
            http_status)
    details = body.get("Details")
    details = details if isinstance(details, str) else None
    orthanc_status = _int_or_none(body.get("OrthancStatus"))
    error = body.get("Message") or body.get("OrthancError")
    verbatim = "Orthanc: %s" % orthanc_error_text(body)
    answer = OrthancAnswer(Classification("protocol_error", "echo", ""), http_status, orthanc_status, details,
                           None if error is None else str(error))
    if orthanc_status == NO_PRESENTATION_CONTEXT:
        answer.verdict = Classification(
            "context_rejected", "associate",
            "the peer accepted Orthanc's association but not the Verification presentation context; %s" % verbatim)
        return answer
    for pattern, table in ((_CONNECTING, _CONNECT_TEXTS), (_ECHOING, _ECHO_TEXTS)):
        match = pattern.match(details or "")
        if not match:
            continue
        for text_pattern, outcome, phase, words in table:
            if text_pattern.match(match.group("text")):
                answer.verdict = Classification(outcome, phase, "%s; %s" % (words.format(timeout=timeout_s), verbatim))
                return answer
    # Anything else is told as Orthanc told it; protocol_error meets no expectation, so nothing is assumed.
    answer.verdict = Classification(
        "protocol_error", "echo",
        "Orthanc reported an echo failure this module does not classify (HTTP %d); %s" % (http_status, verbatim))
    return answer


# --------------------------------------------------------------------------- peers and modalities
@dataclass
class EchoPlan:
    """How Orthanc will echo one peer: through which modality, or as an unregistered AE."""

    peer: PeerSpec
    modality: Optional[str]
    entry: Optional[Dict[str, Any]]
    calling_ae_title: str
    target: Dict[str, Any]
    tls: bool
    calling_given: bool


def _same_host(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def find_modality(peer: PeerSpec, modalities: Mapping[str, Mapping[str, Any]]) -> Optional[str]:
    """The modality id that stands for ``peer``: the one with its AE title, and when several have it the one
    with its host and port too; None when no modality has that AE title."""
    same_title = sorted(mid for mid, entry in modalities.items()
                        if str(entry.get("AET", "")).strip() == peer.ae_title)
    if len(same_title) <= 1:
        return same_title[0] if same_title else None
    same_address = [mid for mid in same_title
                    if _same_host(str(modalities[mid].get("Host", "")), peer.host)
                    and _int_or_none(modalities[mid].get("Port")) == peer.port]
    if len(same_address) == 1:
        return same_address[0]
    raise EchoInputError("peers[%d] (%s): Orthanc has %d modalities with AE title %s (%s); set peers[%d].modality to "
                         "the one to echo" % (peer.index, peer.name, len(same_title), peer.ae_title,
                                              ", ".join(same_title), peer.index))


def plan_echoes(peers: List[PeerSpec], modality_ids: List[Optional[str]], calling_given: List[bool],
                modalities: Mapping[str, Mapping[str, Any]], orthanc_ae_title: str) -> List[EchoPlan]:
    """Decide, before any echo, which endpoint echoes each peer and as which calling AE."""
    plans = []
    for peer, wanted, given in zip(peers, modality_ids, calling_given):
        label = "peers[%d] (%s)" % (peer.index, peer.name)
        if wanted is not None and wanted not in modalities:
            known = ", ".join(sorted(modalities)) or "none"
            raise EchoInputError("%s.modality %r is not a modality of the Orthanc at hand (its modalities: %s)"
                                 % (label, wanted, known))
        modality = wanted if wanted is not None else find_modality(peer, modalities)
        if modality is None:
            calling = peer.calling_ae_title if given else orthanc_ae_title
            plans.append(EchoPlan(peer, None, None, calling,
                                  {"ae_title": peer.ae_title, "host": peer.host, "port": peer.port}, False, given))
            continue
        entry = modality_summary(modalities[modality])
        calling = entry["local_ae_title"] or orthanc_ae_title
        if given and peer.calling_ae_title != calling:
            raise EchoInputError(
                "%s.calling_ae_title is %s, but Orthanc calls modality %r as %s (%s): a registered modality is echoed "
                "with Orthanc's own configuration; drop calling_ae_title, or set it to %s"
                % (label, peer.calling_ae_title, modality, calling,
                   "its LocalAet" if entry["local_ae_title"] else "Orthanc's DicomAet", calling))
        plans.append(EchoPlan(peer, modality, entry, calling,
                              {"ae_title": entry["ae_title"], "host": entry["host"], "port": entry["port"]},
                              entry["tls"], given))
    return plans


def entry_differences(plan: EchoPlan) -> List[str]:
    """How the modality Orthanc echoed differs from the peer as the inventory gives it."""
    if plan.entry is None:
        return []
    differences = []
    if plan.target["ae_title"] != plan.peer.ae_title:
        differences.append("AE title %s (inventory %s)" % (plan.target["ae_title"], plan.peer.ae_title))
    if not _same_host(plan.target["host"], plan.peer.host):
        differences.append("host %s (inventory %s)" % (plan.target["host"], plan.peer.host))
    if plan.target["port"] != plan.peer.port:
        differences.append("port %s (inventory %s)" % (plan.target["port"], plan.peer.port))
    return differences


# --------------------------------------------------------------------------- echoes
def _ip_or_none(host: str) -> Optional[str]:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def echo_one(client: OrthancClient, system: Mapping[str, Any], plan: EchoPlan, timeout_s: int) -> Dict[str, Any]:
    """One echo through Orthanc, as a result in the echo module's schema plus ``echoed_by`` and ``orthanc``."""
    peer = plan.peer
    if plan.modality is not None:
        path = "/modalities/%s/echo" % quote(plan.modality, safe="")
        body: Dict[str, Any] = {"Timeout": timeout_s}
    else:
        path = "/tools/dicom-echo"
        body = {"AET": peer.ae_title, "Host": peer.host, "Port": peer.port, "Timeout": timeout_s}
        if plan.calling_given:
            body["LocalAet"] = plan.calling_ae_title
    wait = ECHO_STEPS * timeout_s + client.http_timeout
    started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    started = time.monotonic()
    try:
        status, headers, text = client.request("POST", path, body, timeout=wait)
    except OrthancHttpTimeout:
        answer = OrthancAnswer(Classification(
            "timeout", "echo", "Orthanc did not answer the echo request within %g s (%d x timeout %d s + http_timeout)"
            % (wait, ECHO_STEPS, timeout_s)), None)
    else:
        if status in (200, 500):
            answer = classify_echo_answer(status, text, timeout_s)
        else:
            # 401 after a good /system, 404 for a modality deleted meanwhile, 400: the API, not the peer.
            raise OrthancApiError(answer_problem(client.url, "POST", path, status, headers, text))
    elapsed_ms = round((time.monotonic() - started) * 1000.0, 3)
    verdict = answer.verdict
    echoed_by = "Orthanc at %s as AE %s" % (client.url, plan.calling_ae_title)
    how = ("modality %r" % plan.modality) if plan.modality is not None else "/tools/dicom-echo (not a modality of Orthanc)"
    message = "%s; echoed by %s through %s" % (verdict.message, echoed_by, how)
    differences = entry_differences(plan)
    if differences:
        message += "; Orthanc's entry differs from the inventory: %s" % ", ".join(differences)
    return {
        "name": peer.name,
        "ae_title": peer.ae_title,
        "host": peer.host,
        "port": peer.port,
        "address": _ip_or_none(plan.target["host"]),
        "source_address": None,
        "calling_ae_title": plan.calling_ae_title,
        "expect": peer.expect,
        "outcome": verdict.outcome,
        "ok": expectation_met(peer.expect, verdict.outcome, verdict.phase, verdict.reject),
        "phase": verdict.phase,
        "message": message,
        "status": verdict.status,
        "reject": verdict.reject,
        "rtt_ms": None,
        "timings_ms": {"connect": None, "associate": None, "echo": None, "release": None, "total": elapsed_ms},
        "peer": None,
        "transfer_syntax": None,
        "services": [],
        "tls": plan.tls,
        "tls_certificate": None,
        "started_at": started_at,
        "attempts": 1,
        "earlier_attempts": [],
        "echoed_by": echoed_by,
        "orthanc": {
            "url": client.url,
            "ae_title": system["ae_title"],
            "endpoint": path,
            "modality": plan.modality,
            "registered": plan.modality is not None,
            "target": dict(plan.target),
            "http_status": answer.http_status,
            "orthanc_status": answer.orthanc_status,
            "error": answer.error,
            "details": answer.details,
        },
    }


def run_echoes(client: OrthancClient, system: Mapping[str, Any], plans: List[EchoPlan], timeout_s: int,
               parallel: int) -> List[Dict[str, Any]]:
    """Every planned echo, ``parallel`` at a time, results in the order of the plans."""
    if not plans:
        return []
    with ThreadPoolExecutor(max_workers=min(parallel, len(plans)), thread_name_prefix="orthanc-echo") as pool:
        return list(pool.map(lambda plan: echo_one(client, system, plan, timeout_s), plans))


# --------------------------------------------------------------------------- drift
def compare_registry(registry: Mapping[str, Mapping[str, Any]], modalities: Mapping[str, Mapping[str, Any]],
                     orthanc_ae_title: str, required: Optional[List[str]] = None) -> Dict[str, Any]:
    """The inventory's AE registry against Orthanc's modality table.

    A registry AE is matched to the modality with its AE title (when several have it, the one also
    with its host and port, else the one named like it), else to the modality named like it, else to
    the only modality with its host and port: so a typo in an AE title, an old IP or a wrong port
    shows as a mismatch of that one field, not as one AE missing and another unknown. The registry
    entry with Orthanc's own AE title is the archive itself and is not compared. Hosts are compared
    as written (case-insensitive): Orthanc compares a caller's address with a modality's Host
    literally too. ``required`` limits the AEs reported missing to those names (the AEs Orthanc must
    reach); every registry AE still counts as known, so none of them is reported unknown.
    """
    entries = {mid: modality_summary(entry) for mid, entry in modalities.items()}
    taken: Dict[str, str] = {}
    pairs: List[Tuple[str, Optional[str]]] = []
    skipped = sorted(name for name, ae in registry.items() if ae["ae_title"] == orthanc_ae_title)
    names = [name for name in sorted(registry) if name not in skipped]

    def free(mid: str) -> bool:
        return mid not in taken

    def same_address(name: str, mid: str) -> bool:
        if registry[name]["host"] is None:
            return False
        return _same_host(entries[mid]["host"], registry[name]["host"]) and entries[mid]["port"] == registry[name]["port"]

    rules = (
        # The AE title, then the AE title with the address, then with the name.
        lambda name, mid: entries[mid]["ae_title"] == registry[name]["ae_title"],
        lambda name, mid: _norm_id(mid) == _norm_id(name),
        same_address,
    )
    matched: Dict[str, str] = {}
    for rule_index, rule in enumerate(rules):
        for name in names:
            if name in matched:
                continue
            candidates = sorted(mid for mid in entries if free(mid) and rule(name, mid))
            if len(candidates) > 1 and rule_index == 0:
                narrower = [mid for mid in candidates if same_address(name, mid)] or \
                    [mid for mid in candidates if _norm_id(mid) == _norm_id(name)]
                candidates = narrower
            if len(candidates) == 1:
                matched[name] = candidates[0]
                taken[candidates[0]] = name
    for name in names:
        pairs.append((name, matched.get(name)))
    missing, mismatches, in_sync = [], [], []
    for name, mid in pairs:
        ae = registry[name]
        if mid is None:
            if required is not None and name not in required:
                continue
            missing.append({"name": name, "ae_title": ae["ae_title"], "host": ae["host"], "port": ae["port"]})
            continue
        entry = entries[mid]
        fields = []
        if entry["ae_title"] != ae["ae_title"]:
            fields.append(("ae_title", ae["ae_title"], entry["ae_title"]))
        # An AE that only calls has no address in the registry to compare with.
        if ae["host"] is not None and not _same_host(entry["host"], ae["host"]):
            fields.append(("host", ae["host"], entry["host"]))
        if ae["host"] is not None and entry["port"] != ae["port"]:
            fields.append(("port", ae["port"], entry["port"]))
        for field_name, registry_value, orthanc_value in fields:
            mismatches.append({"name": name, "modality": mid, "field": field_name,
                               "registry": registry_value, "orthanc": orthanc_value})
        if not fields:
            in_sync.append({"name": name, "modality": mid})
    unknown = [{"modality": mid, "ae_title": entries[mid]["ae_title"], "host": entries[mid]["host"],
                "port": entries[mid]["port"]} for mid in sorted(entries) if mid not in taken]
    return {
        "in_sync": not (missing or unknown or mismatches),
        "missing": missing,
        "unknown": unknown,
        "mismatches": mismatches,
        "matched": in_sync,
        "skipped": skipped,
        "summary": {"compared": len(names) if required is None else len([n for n in names if n in required]),
                    "matched": len(in_sync), "missing": len(missing),
                    "unknown": len(unknown), "mismatches": len(mismatches)},
    }


def _norm_id(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def drift_message(drift: Mapping[str, Any]) -> str:
    """One line: what differs between the registry and Orthanc's modality table."""
    if drift["in_sync"]:
        return "Orthanc's modality table matches the registry (%d AE(s))" % drift["summary"]["compared"]
    parts = []
    if drift["missing"]:
        parts.append("missing in Orthanc: %s" % ", ".join("%s (%s)" % (m["name"], m["ae_title"])
                                                          for m in drift["missing"]))
    if drift["unknown"]:
        parts.append("unknown to the registry: %s" % ", ".join("%s (%s)" % (u["modality"], u["ae_title"])
                                                               for u in drift["unknown"]))
    if drift["mismatches"]:
        parts.append("mismatched: %s" % ", ".join("%s %s %s in Orthanc's %r, %s in the registry"
                                                  % (m["name"], m["field"], m["orthanc"], m["modality"], m["registry"])
                                                  for m in drift["mismatches"]))
    return "configuration drift: %s" % "; ".join(parts)
