"""Input validation of dicom.network.echo: every mistake is named before any traffic."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import (
    EchoInputError,
    ae_title_problem,
    ipv4_literal_problem,
    type_name,
    validate_request,
)


def peer(**overrides):
    base = {"ae_title": "PACS", "host": "127.0.0.1", "port": 11112}
    base.update(overrides)
    return base


def test_defaults_and_order_are_kept():
    request = validate_request({"peers": [peer(name="b"), peer(name="a", expect="reject")]})
    assert [p.name for p in request.peers] == ["b", "a"]
    assert request.peers[0].calling_ae_title == "ECHOSCU"
    assert request.peers[1].expect == "reject"
    assert (request.connect_timeout, request.acse_timeout, request.dimse_timeout) == (5, 10, 10)
    assert (request.parallel, request.count, request.max_pdu) == (16, 1, 16382)


def test_shorthand_builds_one_peer_named_after_the_called_ae():
    request = validate_request({"host": "localhost", "called_ae_title": " ARCHIVE ", "port": 104})
    (only,) = request.peers
    assert (only.name, only.ae_title, only.host, only.port) == ("ARCHIVE", "ARCHIVE", "localhost", 104)


def test_per_peer_calling_ae_and_tls_override():
    request = validate_request({
        "calling_ae_title": "CT1",
        "tls": {"enabled": True, "verify": True},
        "peers": [peer(), peer(name="spoof", calling_ae_title="INTRUDER", tls={"verify": False}),
                  peer(name="plain", tls={"enabled": False, "verify": False})],
    })
    assert request.peers[0].calling_ae_title == "CT1"
    assert request.peers[1].calling_ae_title == "INTRUDER"
    assert request.peers[1].tls.verify is False and request.peers[1].tls.enabled is True
    assert request.peers[2].tls.enabled is False


def test_peer_tls_settings_without_tls_on_are_refused():
    # Module-level TLS off (or not given) and a peer that names a CA file: it would be echoed in plain text.
    for module_tls in ({"enabled": False}, None):
        with pytest.raises(EchoInputError, match=r"^peers\[0\] \(PACS\)\.tls sets ca_file, verify but TLS is off "
                                                 r"for this peer: add enabled: true"):
            validate_request({"tls": module_tls, "peers": [peer(tls={"ca_file": "/etc/ca.pem", "verify": True})]})


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"peers": [peer(ae_title="")]}, "peers[0].ae_title must not be empty"),
        ({"peers": [peer(ae_title="   ")]}, "must not consist only of spaces"),
        ({"peers": [peer(ae_title="A" * 17)]}, "at most 16 characters, got 17"),
        ({"peers": [peer(ae_title="BAD\\AE")]}, "must not contain a backslash"),
        ({"peers": [peer(ae_title="BAD\nAE")]}, "control characters"),
        ({"peers": [peer(ae_title="ÄRCHIV")]}, "default character repertoire"),
        ({"peers": [peer(port=0)]}, "peers[0] (PACS).port must be between 1 and 65535, got 0"),
        ({"peers": [peer(port=70000)]}, "between 1 and 65535"),
        ({"peers": [peer(host="")]}, "peers[0] (PACS).host must be a non-empty host name"),
        ({"peers": [peer(host="pacs server")]}, "must not contain spaces"),
        ({"peers": [peer(name="x"), peer(name="x")]}, "peers[1] (x).name 'x' is also used by peers[0]"),
        ({"peers": [peer(), peer()]}, "names must be unique per calling AE"),
        ({"peers": [peer(calling_ae_title="A"), peer(calling_ae_title="A")]}, "with calling AE title A"),
        ({"peers": [peer(expect="maybe")]}, "peers[0] (PACS).expect must be one of accept, reject, blocked"),
        ({"peers": [peer(count=2)]}, "unknown key(s) count"),
        ({"peers": [peer()], "count": 0}, "count must be between 1 and 1000, got 0"),
        ({"peers": [peer()], "count": 1001}, "count must be between 1 and 1000"),
        ({"peers": [peer()], "parallel": 0}, "parallel must be between 1 and 256"),
        ({"peers": [peer()], "parallel": 257}, "parallel must be between 1 and 256"),
        ({"peers": [peer()], "connect_timeout": 0}, "connect_timeout must be a positive number"),
        ({"peers": [peer()], "acse_timeout": -1}, "acse_timeout must be a positive number"),
        ({"peers": [peer()], "dimse_timeout": "soon"}, "dimse_timeout must be a number of seconds"),
        ({"peers": [peer()], "calling_ae_title": "X" * 20}, "calling_ae_title must be at most 16"),
        ({"peers": [peer(calling_ae_title="")]}, "peers[0] (PACS).calling_ae_title must not be empty"),
        ({"peers": [peer(tls={"enable": True})]}, "peers[0] (PACS).tls has unknown key(s) enable"),
        ({"peers": []}, "peers must not be empty"),
        ({"peers": ["PACS"]}, "peers[0] must be a dictionary"),
        ({"peers": [{"host": "h"}]}, "peers[0].ae_title is required"),
        ({"peers": [{"ae_title": "X"}]}, "peers[0] (X).host is required"),
        ({"host": "h"}, "give either peers, or host and called_ae_title"),
        ({"host": "h", "called_ae_title": "X", "peers": [peer()]}, "mutually exclusive"),
        ({"host": "h", "called_ae_title": "X\\Y"}, "called_ae_title must not contain a backslash"),
        ({"peers": [peer()], "fail_on": "always"}, "fail_on must be 'unexpected' or 'never'"),
    ],
)
def test_bad_input_names_the_field_and_the_peer(params, fragment):
    with pytest.raises(EchoInputError) as caught:
        validate_request(params)
    assert fragment in str(caught.value)


def test_tls_files_are_left_to_the_engine_and_keep_where_they_were_given(monkeypatch):
    # A file missing on the managed host fails only the peers using it, when the echoes run.
    monkeypatch.setenv("HOME", "/home/pacs")
    request = validate_request({
        "tls": {"enabled": True, "ca_file": "~/ca.pem"},
        "peers": [peer(), peer(name="own", tls={"ca_file": "/nonexistent/ca.pem"}),
                  peer(name="off", tls={"enabled": False, "ca_file": "/nonexistent"})]})
    first, own, off = (spec.tls for spec in request.peers)
    assert (first.ca_file, first.origin) == ("/home/pacs/ca.pem", "tls")
    assert (own.ca_file, own.origin) == ("/nonexistent/ca.pem", "peers[1] (own).tls")
    assert off.enabled is False
    # Where settings were given does not split peers with equal settings (one SSL context each).
    twin = validate_request({"peers": [peer(tls={"enabled": True, "ca_file": "/home/pacs/ca.pem"})]}).peers[0].tls
    assert twin == first and hash(twin) == hash(first)


def test_key_password_is_not_in_the_repr():
    request = validate_request({"peers": [peer()], "tls": {"key_password": "s3cret"}})
    assert "s3cret" not in repr(request)


_AE_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="\\")


@given(st.text(alphabet=_AE_CHARS, min_size=1, max_size=16).filter(lambda t: t.strip(" ")))
def test_every_printable_title_up_to_16_characters_is_valid(title):
    assert ae_title_problem(title) is None


@given(st.text(min_size=0, max_size=40))
def test_a_title_is_valid_exactly_when_the_standard_allows_it(title):
    stripped = title.strip(" ")
    allowed = (
        0 < len(stripped) <= 16
        and "\\" not in title
        and all(0x20 <= ord(c) <= 0x7E for c in title)
    )
    assert (ae_title_problem(title) is None) == allowed


def test_type_names_are_the_builtin_ones_users_wrote():
    class TaggedInt(int):  # what ansible-core 2.19 hands over (_AnsibleTaggedInt)
        pass

    class LazyList(list):
        pass

    assert [type_name(v) for v in (TaggedInt(3), LazyList(), "x", None)] == ["int", "list", "str", "NoneType"]

    class Opaque:  # no built-in base at all
        pass

    assert type_name(Opaque()) == "Opaque"


@pytest.mark.parametrize("host, problem", [
    ("10.1.2.3", None),
    ("pacs-1.example.org", None),
    ("10.010.020.057", "would read this one as 10.8.16.47"),
    ("127.1", "would read this one as 127.0.0.1"),
    ("2130706433", "would read this one as 127.0.0.1"),
    ("1.2.3.4.5", "not a valid IPv4 address"),
])
def test_ipv4_literals_are_written_the_way_the_resolver_reads_them(host, problem):
    found = ipv4_literal_problem(host)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_one_peer_may_be_echoed_as_several_calling_aes():
    request = validate_request({"peers": [peer(calling_ae_title="WS1"), peer(calling_ae_title="SCU_ONLY")]})
    assert [(p.name, p.calling_ae_title) for p in request.peers] == [("PACS", "WS1"), ("PACS", "SCU_ONLY")]
