# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS settings of this host turned into SSL contexts before any traffic, and when a file cannot
be used, why, in the settings' own words (OpenSSL only says "PEM lib")."""

from __future__ import annotations

import hashlib
import math
import os
import socket
import ssl
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Union

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import TlsSettings


class TlsSetupError(Exception):
    """A TLS file of this host cannot be used: only the peers whose settings name it fail."""

    def __init__(self, field_name: Optional[str], detail: str):
        super().__init__(detail)
        self.field_name = field_name
        self.detail = detail

    def for_settings(self, tls: TlsSettings) -> str:
        """The problem, named as the settings were given (module ``tls`` or a peer's)."""
        return "%s%s: %s" % (tls.origin, "." + self.field_name if self.field_name else "", self.detail)


def _check_tls_file(key: str, path: Optional[str]) -> None:
    if path is None:
        return
    if os.path.isdir(path):
        raise TlsSetupError(key, "%s is a directory, not a file" % path)
    if not os.path.isfile(path):
        raise TlsSetupError(key, "file %s does not exist" % path)
    if not os.access(path, os.R_OK):
        raise TlsSetupError(key, "file %s is not readable" % path)


def build_ssl_context(tls: TlsSettings) -> Optional[ssl.SSLContext]:
    """An SSL context for one TLS setting, loaded before any traffic so a bad file sends nothing."""
    if not tls.enabled:
        return None
    for key in ("ca_file", "cert_file", "key_file"):
        _check_tls_file(key, getattr(tls, key))
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsSetupError("ca_file" if tls.ca_file else None, "%s holds no usable PEM CA certificate: %s" % (
            tls.ca_file or "the system trust store", getattr(exc, "reason", None) or exc)) from None
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file, password=tls.key_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            field_name, detail = _client_key_problem(tls, getattr(exc, "reason", None))
            raise TlsSetupError(field_name, "%s (%s)" % (
                detail, getattr(exc, "reason", None) or exc)) from None
    return context


def _read_head(path: Optional[str]) -> bytes:
    try:
        with open(path or "", "rb") as stream:
            return stream.read(1 << 20)
    except OSError:
        return b""


def _client_key_problem(tls: TlsSettings, reason: Optional[str] = None) -> Tuple[Optional[str], str]:
    """Why the client certificate and key did not load, in the settings' words.

    OpenSSL says only "PEM lib" or "Invalid argument" for a certificate that is not PEM, a missing or
    wrong password and a certificate file without a key; the PEM headers tell those cases apart.
    """
    certificate = _read_head(tls.cert_file)
    if b"CERTIFICATE-----" not in certificate:
        # DER (what Windows CAs often hand out) starts with an ASN.1 SEQUENCE.
        hint = (": it looks like DER, convert it with openssl x509 -inform DER -in %s -out client.pem" % tls.cert_file
                if certificate[:1] == b"\x30" else "")
        return "cert_file", "%s holds no PEM certificate%s" % (tls.cert_file, hint)
    key_path = tls.key_file or tls.cert_file
    pem = _read_head(key_path)
    if reason == "KEY_VALUES_MISMATCH" and b"PRIVATE KEY-----" in pem:
        return "key_file" if tls.key_file else "cert_file", "the private key in %s is not the key of cert_file %s" % (
            key_path, tls.cert_file)
    if b"PRIVATE KEY-----" not in pem:
        if tls.key_file:
            return "key_file", "%s holds no PEM private key" % tls.key_file
        return "key_file", "not set, and cert_file %s holds no private key: set key_file" % tls.cert_file
    if b"ENCRYPTED" in pem:
        where = "key_file" if tls.key_file else "cert_file"
        if tls.key_password is None:
            return "key_password", "not set, but the private key in %s %s is encrypted" % (where, key_path)
        return "key_password", "does not decrypt the private key in %s %s (or that key is damaged)" % (where, key_path)
    return None, "cannot load cert_file %s with %s %s: is the key the certificate's own?" % (
        tls.cert_file, "key_file" if tls.key_file else "its key in", key_path)


def ssl_contexts(settings: Iterable[TlsSettings]) -> Dict[TlsSettings, Union[ssl.SSLContext, TlsSetupError, None]]:
    """A context for each distinct TLS setting (its files loaded once), or the problem with its files."""
    contexts: Dict[TlsSettings, Union[ssl.SSLContext, TlsSetupError, None]] = {}
    for tls in settings:
        if tls not in contexts:
            try:
                contexts[tls] = build_ssl_context(tls)
            except TlsSetupError as problem:
                contexts[tls] = problem
    return contexts


# The standard library's attribute names, as RFC 4514 (and cryptography) write them.
_RDN_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
              "localityName": "L", "stateOrProvinceName": "ST", "domainComponent": "DC", "streetAddress": "STREET",
              "userId": "UID"}
_NO_DATES = ("the certificate was not verified, and reading its dates without verification needs the Python "
             "package cryptography on this host")


def _rfc4514(name: Any) -> Optional[str]:
    """A name of ssl.getpeercert() (RDNs, most significant first) as RFC 4514 writes it (least first)."""
    if not name:
        return None
    parts = []
    for rdn in reversed(name):
        parts.append("+".join("%s=%s" % (_RDN_NAMES.get(key, key), str(value).replace(",", "\\,"))
                              for key, value in rdn))
    return ",".join(parts)


def certificate_facts(der: Optional[bytes], verified: Optional[dict], now: float) -> Optional[Dict[str, Any]]:
    """What a peer's leaf certificate says: the SHA-256 fingerprint of its DER bytes always; subject, issuer,
    not-after and whole days left from ``verified`` (ssl.getpeercert() of a verified peer) or else with the
    cryptography package where this host has it, and a ``note`` where it has not (never a requirement)."""
    if not der:
        return None
    facts: Dict[str, Any] = {"sha256": ":".join("%02X" % byte for byte in hashlib.sha256(der).digest()),
                             "verified": bool(verified), "subject": None, "issuer": None, "not_after": None,
                             "days_left": None}
    if verified and verified.get("notAfter"):
        facts["subject"], facts["issuer"] = _rfc4514(verified.get("subject")), _rfc4514(verified.get("issuer"))
        not_after = float(ssl.cert_time_to_seconds(verified["notAfter"]))
    else:
        try:
            from cryptography import x509  # pylint: disable=import-outside-toplevel
        except ImportError:
            facts["note"] = _NO_DATES
            return facts
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            facts["note"] = "the certificate cannot be read: %s" % exc
            return facts
        facts["subject"], facts["issuer"] = certificate.subject.rfc4514_string(), certificate.issuer.rfc4514_string()
        expires = getattr(certificate, "not_valid_after_utc", None) or \
            certificate.not_valid_after.replace(tzinfo=timezone.utc)
        not_after = expires.timestamp()
    facts["not_after"] = datetime.fromtimestamp(not_after, timezone.utc).isoformat().replace("+00:00", "Z")
    facts["days_left"] = int(math.floor((not_after - now) / 86400.0))
    return facts


def unverified_certificate(address: tuple, server_hostname: Optional[str], timeout: float,
                           bind_address: Optional[str]) -> Optional[bytes]:
    """The leaf certificate (DER) of a peer whose certificate failed verification, by one more TLS handshake
    without verification that sends nothing else; None when that fails too (it only adds to a report)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(address[:2], timeout=timeout,
                                      source_address=(bind_address, 0) if bind_address else None) as raw:
            with context.wrap_socket(raw, server_hostname=server_hostname) as sock:
                return sock.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None


def handshake(raw: socket.socket, tls_args: Tuple[ssl.SSLContext, Optional[str]], address: tuple,
              time_left: Callable[[], float], bind_address: Optional[str]) -> Tuple[ssl.SSLSocket, Optional[Dict[str, Any]]]:
    """The TLS handshake on a connected socket: the TLS socket and the peer certificate's facts. A peer
    whose certificate fails verification raises SSLCertVerificationError carrying ``certificate_facts``:
    its expiry and fingerprint still tell why, from one unverified handshake in the ``time_left()``."""
    context, server_hostname = tls_args
    try:
        sock = context.wrap_socket(raw, server_side=False, server_hostname=server_hostname)
    except ssl.SSLCertVerificationError as exc:
        left = time_left()
        der = unverified_certificate(address, server_hostname, left, bind_address) if left > 0.1 else None
        exc.certificate_facts = certificate_facts(der, None, time.time())  # type: ignore[attr-defined]
        raise
    return sock, certificate_facts(sock.getpeercert(True), sock.getpeercert(), time.time())


def session_line(sock: ssl.SSLSocket) -> str:
    cipher = sock.cipher()
    return "TLS established: %s, cipher %s" % (sock.version(), cipher[0] if cipher else "?")


def tls_record_hint(pdu_type: int, tls_enabled: bool) -> str:
    """Where plain DICOM got a TLS record back (an alert 0x15 or a handshake 0x16), what it likely means."""
    if pdu_type in (0x15, 0x16) and not tls_enabled:
        return " (a TLS record: this port may expect DICOM over TLS, see tls.enabled)"
    return ""
