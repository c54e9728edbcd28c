"""What the echo reports of a peer's TLS certificate, from its DER bytes and the standard library's view."""
from __future__ import annotations

import datetime
import hashlib
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.dicom.network.plugins.module_utils.echo_tls import certificate_facts

NOW = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _certificate(not_after: datetime.datetime, common_name: str = "pacs.example.org") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hospital, Radiology"),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hospital CA")])
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(7).not_valid_before(NOW - datetime.timedelta(days=30)).not_valid_after(not_after)
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.DER)


def test_an_unverified_certificate_is_read_with_cryptography():
    der = _certificate(NOW + datetime.timedelta(days=9, hours=5))
    facts = certificate_facts(der, {}, NOW.timestamp())
    assert facts == {
        "sha256": ":".join("%02X" % b for b in hashlib.sha256(der).digest()), "verified": False,
        "subject": "CN=pacs.example.org,O=Hospital\\, Radiology", "issuer": "CN=Hospital CA",
        "not_after": "2026-12-16T17:00:00Z", "days_left": 9}


def test_a_verified_certificate_is_read_from_the_standard_librarys_view_in_the_same_words():
    der = _certificate(NOW - datetime.timedelta(hours=1))
    verified = {"subject": ((("organizationName", "Hospital, Radiology"),), (("commonName", "pacs.example.org"),)),
                "issuer": ((("commonName", "Hospital CA"),),), "notAfter": "Dec  7 11:00:00 2026 GMT"}
    facts = certificate_facts(der, verified, NOW.timestamp())
    assert facts["verified"] is True
    assert (facts["subject"], facts["issuer"]) == (certificate_facts(der, {}, 0)["subject"], "CN=Hospital CA")
    # An hour past its end is day -1: whole days left, rounded down.
    assert (facts["not_after"], facts["days_left"]) == ("2026-12-07T11:00:00Z", -1)


def test_without_cryptography_the_fingerprint_stays_and_a_note_says_why_the_dates_are_missing(monkeypatch):
    der = _certificate(NOW + datetime.timedelta(days=400))
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import fails as where it is not installed
    facts = certificate_facts(der, {}, NOW.timestamp())
    assert facts["sha256"] and (facts["subject"], facts["not_after"], facts["days_left"]) == (None, None, None)
    assert facts["note"] == ("the certificate was not verified, and reading its dates without verification needs "
                             "the Python package cryptography on this host")


@pytest.mark.parametrize("der", [None, b""])
def test_no_certificate_no_facts(der):
    assert certificate_facts(der, None, NOW.timestamp()) is None


def test_bytes_that_are_no_certificate_keep_their_fingerprint():
    facts = certificate_facts(b"\x30\x03\x02\x01\x01", None, NOW.timestamp())
    assert facts["sha256"] == ":".join("%02X" % b for b in hashlib.sha256(b"\x30\x03\x02\x01\x01").digest())
    assert facts["note"].startswith("the certificate cannot be read: ")
