# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input validation for the echo module, free of Ansible and pynetdicom.

Everything here runs before any network traffic, so a typo in an inventory never reaches a
hospital's PACS. Every error names the field and, for peers, the index and the name.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import EXPECTATIONS

AE_TITLE_MAX_LENGTH = 16
DEFAULT_PORT = 104
DEFAULT_CALLING_AE_TITLE = "ECHOSCU"
COUNT_RANGE = (1, 1000)
RETRIES_RANGE = (0, 5)
MAX_RETRY_DELAY_S = 600
PARALLEL_RANGE = (1, 256)
MAX_TIMEOUT_S = 86400  # a day; beyond threading.TIMEOUT_MAX (~9.2e9 s) Python's waits overflow
MAX_PDU_RANGE = (0, 2 ** 32 - 1)
# DCMTK's ASC_MINIMUMPDUSIZE: peers abort associations that announce less.
MIN_MAX_PDU = 4096
TLS_KEYS = ("enabled", "ca_file", "cert_file", "key_file", "key_password", "verify", "server_hostname")
PEER_KEYS = ("ae_title", "host", "port", "name", "expect", "calling_ae_title", "tls", "services", "discover")
SERVICE_KEYS = ("sop_class", "transfer_syntaxes")
# The families `discover` proposes (resolved to SOP classes by echo_services on the managed host).
DISCOVER_FAMILIES = ("storage", "query_retrieve", "worklist", "all")
UID_MAX_LENGTH = 64


# The argument spec of a peer's common keys, for the modules that take a peers list; validate_request()
# checks them instead, so that an error names the entry.
PEER_ARGUMENT_OPTIONS = dict(ae_title=dict(type="str"), host=dict(type="str"), port=dict(type="raw"),
                             name=dict(type="str"), expect=dict(type="str"), calling_ae_title=dict(type="str"))


class EchoInputError(ValueError):
    """A user mistake in the module's input; the message names the field and the peer."""


@dataclass(frozen=True)
class TlsSettings:
    enabled: bool = False
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    key_password: Optional[str] = field(default=None, repr=False)
    verify: bool = True
    server_hostname: Optional[str] = None
    # Where the settings were given ("tls" or "peers[2] (PACS).tls"), for messages; equal
    # settings from different places still share one SSL context.
    origin: str = field(default="tls", compare=False)


@dataclass(frozen=True)
class ServiceSpec:
    """A service a peer must provide, as written: a SOP class and the transfer syntaxes to propose
    (keywords or UIDs, checked for syntax only; echo_services resolves them with pydicom)."""

    sop_class: str
    transfer_syntaxes: Tuple[str, ...] = ()
    where: str = field(default="services", compare=False)


@dataclass(frozen=True)
class PeerSpec:
    index: int
    name: str
    ae_title: str
    host: str
    port: int
    expect: str
    calling_ae_title: str
    tls: TlsSettings
    services: Tuple[ServiceSpec, ...] = ()
    discover: Optional[str] = None


@dataclass(frozen=True)
class EchoRequest:
    peers: List[PeerSpec]
    connect_timeout: float
    acse_timeout: float
    dimse_timeout: float
    parallel: int
    count: int
    bind_address: Optional[str]
    max_pdu: int
    debug: bool
    fail_on: str
    retries: int = 0
    retry_delay: float = 2.0


def ae_title_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a valid AE title (PS3.5 VR AE), or None when it is."""
    if not isinstance(value, str):
        return "must be a string, got %s" % type_name(value)
    if value == "":
        return "must not be empty"
    if value.strip(" ") == "":
        return "must not consist only of spaces"
    if "\\" in value:
        return "must not contain a backslash"
    for char in value:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return "must not contain control characters (found 0x%02X)" % ord(char)
        if ord(char) > 0x7E:
            return "must use the DICOM default character repertoire (ASCII), found %r" % char
    if len(value.strip(" ")) > AE_TITLE_MAX_LENGTH:
        return "must be at most %d characters, got %d" % (AE_TITLE_MAX_LENGTH, len(value.strip(" ")))
    return None


def normalize_ae_title(value: Any, where: str) -> str:
    problem = ae_title_problem(value)
    if problem is not None:
        raise EchoInputError("%s %s (got %r)" % (where, problem, value))
    # Leading and trailing spaces are not significant in an AE title (PS3.5).
    return value.strip(" ")


def _check_port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value), 10)
        except ValueError:
            raise EchoInputError("%s must be an integer port number, got %r" % (where, value)) from None
    if not 1 <= value <= 65535:
        raise EchoInputError("%s must be between 1 and 65535, got %d" % (where, value))
    return value


def _check_max_pdu(value: Any) -> int:
    value = _check_range(value, "max_pdu", MAX_PDU_RANGE)
    if 0 < value < MIN_MAX_PDU:
        raise EchoInputError("max_pdu must be 0 (unlimited) or at least %d, got %d: DICOM peers such as DCMTK "
                             "abort an association that announces less" % (MIN_MAX_PDU, value))
    return value


def type_name(value: Any) -> str:
    """The built-in type a value is, as users wrote it: ansible-core 2.19 hands over subclasses
    such as _AnsibleTaggedStr or _AnsibleLazyTemplateList, whose names mean nothing to them."""
    for cls in type(value).__mro__:
        if cls.__module__ == "builtins" and cls is not object:
            return cls.__name__
    return type(value).__name__


def ipv4_literal_problem(host: str) -> Optional[str]:
    """Why a host of digits and dots is not a plain IPv4 address, or None.

    getaddrinfo() takes 010 as octal 8 and 127.1 as 127.0.0.1: an address copied with zero padding
    from a spreadsheet (10.010.020.057) would be echoed at another machine (10.8.16.47).
    """
    if not _DIGITS_AND_DOTS.match(host):
        return None
    try:
        ipaddress.IPv4Address(host)
        return None
    except ValueError:
        pass
    try:
        read_as = socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return "%r is not a valid IPv4 address" % (host,)
    return ("%r is ambiguous: write the IPv4 address as four decimal numbers without leading zeros "
            "(the resolver would read this one as %s)" % (host, read_as))


# A name of digits and dots can only be an IPv4 literal (no top-level domain is numeric).
_DIGITS_AND_DOTS = re.compile(r"^[0-9.]+$")


def _check_host(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EchoInputError("%s must be a non-empty host name or address, got %r" % (where, value))
    host = value.strip()
    if any(ord(c) < 0x21 for c in host):
        raise EchoInputError("%s must not contain spaces or control characters, got %r" % (where, value))
    problem = ipv4_literal_problem(host)
    if problem:
        raise EchoInputError("%s %s" % (where, problem))
    return host


def _check_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("yes", "true", "on", "1"):
        return True
    if lowered in ("no", "false", "off", "0"):
        return False
    raise EchoInputError("%s must be a boolean, got %r" % (where, value))


def _check_range(value: Any, where: str, bounds: tuple) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EchoInputError("%s must be an integer, got %r" % (where, value))
    low, high = bounds
    if not low <= value <= high:
        raise EchoInputError("%s must be between %d and %d, got %d" % (where, low, high, value))
    return value


def _check_timeout(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise EchoInputError("%s must be a number of seconds, got %r" % (where, value))
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise EchoInputError("%s must be a number of seconds, got %r" % (where, value)) from None
    if math.isnan(seconds) or math.isinf(seconds) or seconds <= 0:
        raise EchoInputError("%s must be a positive number of seconds, got %r" % (where, value))
    if seconds > MAX_TIMEOUT_S:
        raise EchoInputError("%s must be at most %d seconds, got %r" % (where, MAX_TIMEOUT_S, value))
    return seconds


def _check_retry_delay(value: Any) -> float:
    if not isinstance(value, bool) and value in (0, 0.0):
        return 0.0
    seconds = _check_timeout(value, "retry_delay")
    if seconds > MAX_RETRY_DELAY_S:
        raise EchoInputError("retry_delay must be at most %d seconds, got %r" % (MAX_RETRY_DELAY_S, value))
    return seconds


# The call-wide options a caller may check on its own, before any peer list exists.
CALL_OPTION_CHECKS = {
    "connect_timeout": lambda value: _check_timeout(value, "connect_timeout"),
    "acse_timeout": lambda value: _check_timeout(value, "acse_timeout"),
    "dimse_timeout": lambda value: _check_timeout(value, "dimse_timeout"),
    "parallel": lambda value: _check_range(value, "parallel", PARALLEL_RANGE),
    "count": lambda value: _check_range(value, "count", COUNT_RANGE),
    "max_pdu": _check_max_pdu,
    "retries": lambda value: _check_range(value, "retries", RETRIES_RANGE),
    "retry_delay": _check_retry_delay,
}


# A UID is numbers without leading zeros joined by dots (PS3.5 9.1); a keyword is a pydicom one.
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
_KEYWORD = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def uid_or_keyword_problem(value: Any) -> Optional[str]:
    """Why ``value`` is neither a well-formed UID nor a keyword, or None."""
    if not isinstance(value, str) or not value.strip():
        return "must be a keyword or a UID, got %r" % (value,)
    text = value.strip()
    if _KEYWORD.match(text):
        return None
    if re.match(r"^[0-9.]+$", text):
        if len(text) > UID_MAX_LENGTH:
            return "is not a valid UID: %d characters, at most %d allowed (got %r)" % (
                len(text), UID_MAX_LENGTH, text)
        if not _UID.match(text):
            return ("is not a valid UID: numbers joined by single dots, without leading zeros (got %r)"
                    % (text,))
        return None
    return "must be a pydicom keyword (letters and digits, like CTImageStorage) or a UID, got %r" % (text,)


def _check_uid_or_keyword(value: Any, where: str) -> str:
    problem = uid_or_keyword_problem(value)
    if problem is not None:
        raise EchoInputError("%s %s" % (where, problem))
    return value.strip()


def check_services(value: Any, where: str = "services") -> Tuple[ServiceSpec, ...]:
    """The ``services`` list as written (syntax only: the controller has no pydicom); a duplicate
    SOP class or transfer syntax is refused."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise EchoInputError("%s must be a list of SOP classes (keywords or UIDs, or dictionaries with "
                             "sop_class and transfer_syntaxes), got %s" % (where, type_name(value)))
    services: List[ServiceSpec] = []
    seen: Dict[str, int] = {}
    for index, entry in enumerate(value):
        label = "%s[%d]" % (where, index)
        syntaxes: Tuple[str, ...] = ()
        if isinstance(entry, Mapping):
            unknown = sorted(map(str, set(entry) - set(SERVICE_KEYS)))
            if unknown:
                raise EchoInputError("%s has unknown key(s) %s; valid keys are %s"
                                     % (label, ", ".join(unknown), ", ".join(SERVICE_KEYS)))
            if entry.get("sop_class") is None:
                raise EchoInputError("%s.sop_class is required" % label)
            sop_class = _check_uid_or_keyword(entry["sop_class"], label + ".sop_class")
            syntaxes = _check_transfer_syntaxes(entry.get("transfer_syntaxes"), label + ".transfer_syntaxes")
        else:
            sop_class = _check_uid_or_keyword(entry, label)
        if sop_class in seen:
            raise EchoInputError("%s names %s again (also %s[%d]); list each SOP class once, with every "
                                 "transfer syntax it needs" % (label, sop_class, where, seen[sop_class]))
        seen[sop_class] = index
        services.append(ServiceSpec(sop_class=sop_class, transfer_syntaxes=syntaxes, where=label))
    return tuple(services)


def _check_transfer_syntaxes(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not value:
        raise EchoInputError("%s must be a non-empty list of transfer syntaxes (keywords or UIDs), got %r"
                             % (where, value))
    syntaxes = [_check_uid_or_keyword(item, "%s[%d]" % (where, index)) for index, item in enumerate(value)]
    for index, syntax in enumerate(syntaxes):
        if syntax in syntaxes[:index]:
            raise EchoInputError("%s[%d] names %s twice" % (where, index, syntax))
    return tuple(syntaxes)


def check_discover(value: Any, where: str = "discover") -> Optional[str]:
    if value in (None, ""):
        return None
    if value not in DISCOVER_FAMILIES:
        raise EchoInputError("%s must be one of %s, got %r" % (where, ", ".join(DISCOVER_FAMILIES), value))
    return str(value)


def merge_tls(base: Mapping[str, Any], override: Optional[Mapping[str, Any]], where: str) -> TlsSettings:
    """The TLS settings of one peer: the module-level ``base`` with the peer's ``override``; no file is read."""
    merged: Dict[str, Any] = {}
    for source, label in ((base, "tls"), (override, where + ".tls")):
        if source is None:
            continue
        if not isinstance(source, Mapping):
            raise EchoInputError("%s must be a dictionary, got %r" % (label, type_name(source)))
        unknown = sorted(set(source) - set(TLS_KEYS))
        if unknown:
            raise EchoInputError("%s has unknown key(s) %s; valid keys are %s"
                                 % (label, ", ".join(unknown), ", ".join(TLS_KEYS)))
        merged.update({k: v for k, v in source.items() if v is not None})
    label = where + ".tls" if override else "tls"
    enabled = _check_bool(merged.get("enabled", False), label + ".enabled")
    given = sorted(key for key, value in (override or {}).items() if value is not None)
    if not enabled and given and "enabled" not in given:
        # TLS settings for a peer that is then echoed in plain text are a mistake, not a wish.
        raise EchoInputError("%s sets %s but TLS is off for this peer: add enabled: true to use TLS, or "
                             "enabled: false to keep it plain" % (label, ", ".join(given)))
    verify = _check_bool(merged.get("verify", True), label + ".verify")
    # The files are read on the managed host when the echoes start: a missing or broken one
    # fails only the peers that use it (tls_error), as any other state of this host would.
    files = {}
    for key in ("ca_file", "cert_file", "key_file"):
        path = merged.get(key)
        files[key] = os.path.expanduser(str(path)) if path is not None and enabled else path
    if enabled and files["key_file"] and not files["cert_file"]:
        raise EchoInputError("%s.key_file is set but %s.cert_file is not" % (label, label))
    server_hostname = merged.get("server_hostname")
    if server_hostname is not None:
        server_hostname = _check_host(server_hostname, label + ".server_hostname")
    password = merged.get("key_password")
    return TlsSettings(
        enabled=enabled, verify=verify, server_hostname=server_hostname,
        key_password=None if password is None else str(password), origin=label, **files)


def validate_request(params: Mapping[str, Any]) -> EchoRequest:
    """Check the module parameters as a whole and return a typed request, or raise EchoInputError."""
    module_calling = normalize_ae_title(
        params.get("calling_ae_title", DEFAULT_CALLING_AE_TITLE), "calling_ae_title")
    module_tls = params.get("tls") or {}
    module_services = check_services(params.get("services"))
    module_discover = check_discover(params.get("discover"))
    peers_param = params.get("peers")
    shorthand = {k: params.get(k) for k in ("host", "port", "called_ae_title") if params.get(k) is not None}
    if peers_param is not None and shorthand:
        raise EchoInputError("peers is mutually exclusive with %s" % ", ".join(sorted(shorthand)))
    if peers_param is None:
        if "host" not in shorthand or "called_ae_title" not in shorthand:
            raise EchoInputError("give either peers, or host and called_ae_title (single-peer shorthand)")
        shorthand.setdefault("port", DEFAULT_PORT)
        normalize_ae_title(shorthand["called_ae_title"], "called_ae_title")
        _check_host(shorthand["host"], "host")
        _check_port(shorthand["port"], "port")
        peers_param = [{"host": shorthand["host"], "port": shorthand["port"],
                        "ae_title": shorthand["called_ae_title"]}]
    if not isinstance(peers_param, list):
        raise EchoInputError("peers must be a list of dictionaries, got %s" % type_name(peers_param))
    if not peers_param:
        raise EchoInputError("peers must not be empty")

    peers: List[PeerSpec] = []
    seen_names: Dict[Tuple[str, str], int] = {}
    for index, raw in enumerate(peers_param):
        label = "peers[%d]" % index
        if not isinstance(raw, Mapping):
            raise EchoInputError("%s must be a dictionary with ae_title and host, got %r" % (label, raw))
        if raw.get("name") not in (None, ""):
            label = "peers[%d] (%s)" % (index, raw.get("name"))
        elif isinstance(raw.get("ae_title"), str) and raw["ae_title"].strip():
            label = "peers[%d] (%s)" % (index, raw.get("ae_title"))
        unknown = sorted(set(raw) - set(PEER_KEYS))
        if unknown:
            raise EchoInputError("%s has unknown key(s) %s; valid keys are %s"
                                 % (label, ", ".join(map(str, unknown)), ", ".join(PEER_KEYS)))
        if raw.get("ae_title") is None:
            raise EchoInputError("%s.ae_title is required" % label)
        ae_title = normalize_ae_title(raw.get("ae_title"), label + ".ae_title")
        if raw.get("host") is None:
            raise EchoInputError("%s.host is required" % label)
        host = _check_host(raw.get("host"), label + ".host")
        port = _check_port(raw.get("port", DEFAULT_PORT) if raw.get("port") is not None else DEFAULT_PORT,
                           label + ".port")
        name = raw.get("name")
        name = ae_title if name in (None, "") else str(name)
        expect = raw.get("expect") or "accept"
        if expect not in EXPECTATIONS:
            raise EchoInputError("%s.expect must be one of %s, got %r" % (label, ", ".join(EXPECTATIONS), expect))
        calling = module_calling
        if raw.get("calling_ae_title") is not None:
            calling = normalize_ae_title(raw["calling_ae_title"], label + ".calling_ae_title")
        # A result is told apart by its peer name and calling AE: one peer may be echoed as several callers.
        if (name, calling) in seen_names:
            raise EchoInputError("%s.name %r is also used by peers[%d] with calling AE title %s; names must be unique "
                                 "per calling AE" % (label, name, seen_names[(name, calling)], calling))
        seen_names[(name, calling)] = index
        tls = merge_tls(module_tls, raw.get("tls"), label)
        services, discover = module_services, module_discover
        if raw.get("services") is not None:
            services = check_services(raw["services"], label + ".services")
        if raw.get("discover") is not None:
            discover = check_discover(raw["discover"], label + ".discover")
        if expect != "accept" and (raw.get("services") is not None or raw.get("discover") is not None):
            # Services are negotiated only by a peer that accepts the caller; module-level ones do not apply.
            raise EchoInputError("%s sets %s but expects %s: services are checked only on a route that must "
                                 "accept" % (label, " and ".join(k for k in ("services", "discover")
                                                                 if raw.get(k) is not None), expect))
        if expect != "accept":
            services, discover = (), None
        peers.append(PeerSpec(index=index, name=name, ae_title=ae_title, host=host, port=port,
                              expect=expect, calling_ae_title=calling, tls=tls, services=services,
                              discover=discover))

    bind_address = params.get("bind_address")
    if bind_address is not None:
        bind_address = _check_host(bind_address, "bind_address")
    fail_on = params.get("fail_on", "unexpected")
    if fail_on not in ("unexpected", "never"):
        raise EchoInputError("fail_on must be 'unexpected' or 'never', got %r" % (fail_on,))
    max_pdu = params.get("max_pdu")
    return EchoRequest(
        peers=peers,
        connect_timeout=_check_timeout(params.get("connect_timeout", 5), "connect_timeout"),
        acse_timeout=_check_timeout(params.get("acse_timeout", 10), "acse_timeout"),
        dimse_timeout=_check_timeout(params.get("dimse_timeout", 10), "dimse_timeout"),
        parallel=_check_range(params.get("parallel", 16), "parallel", PARALLEL_RANGE),
        count=_check_range(params.get("count", 1), "count", COUNT_RANGE),
        bind_address=bind_address,
        max_pdu=_check_max_pdu(16382 if max_pdu is None else max_pdu),
        debug=_check_bool(params.get("debug", False), "debug"),
        fail_on=fail_on,
        retries=_check_range(params.get("retries", 0), "retries", RETRIES_RANGE),
        retry_delay=_check_retry_delay(params.get("retry_delay", 2.0)),
    )


def bind_family(address: str) -> Tuple[int, int]:
    """The address family (and IP version) that a bind address imposes on the peers."""
    return (socket.AF_INET6, 6) if ":" in address else (socket.AF_INET, 4)


def check_bind_address(address: Optional[str]) -> None:
    """Bind once to ``address`` before any peer: a wrong one is this host's mistake, not every peer's."""
    if not address:
        return
    family, version = bind_family(address)
    try:
        infos = socket.getaddrinfo(address, 0, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise EchoInputError("bind_address %r does not resolve to an IPv%d address: %s"
                             % (address, version, getattr(exc, "strerror", None) or exc)) from None
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.bind(infos[0][4])
    except OSError as exc:
        resolved = str(infos[0][4][0])
        raise EchoInputError("bind_address %s is not an address of this host (%s): give one of its own addresses, or "
                             "leave it unset (in an audit: dicom_bind_address)"
                             % (repr(address) if resolved == address else "%r (%s)" % (address, resolved),
                                exc.strerror or exc)) from None
    finally:
        probe.close()
