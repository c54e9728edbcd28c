"""audit_archive: dicom_echo_api checked without keeping the password, the Archive configuration section from the
journal, and merged across the reports of a run's slices or sites."""
from __future__ import annotations

import pytest

from ansible_collections.dicom.network.plugins.plugin_utils.audit_archive import (
    EchoApiError,
    api_label,
    api_peers,
    archive_section,
    check_echo_api,
    difference_text,
    drift_problems,
    merge_archive_sections,
)

SECRET = "n0t-in-any-file"


def test_echo_api_keeps_everything_but_the_password():
    api = check_echo_api({"type": "orthanc", "url": "https://pacs:8042/", "username": "u", "password": SECRET})
    assert api == {"type": "orthanc", "label": "Orthanc REST", "url": "https://pacs:8042", "username": "u",
                   "has_password": True, "validate_certs": True, "ca_path": None}
    assert SECRET not in repr(api)


@pytest.mark.parametrize("value, words", [
    ("orthanc", "must be a dictionary {type: orthanc, url, username, password}, got str"),
    ({"type": "orthanc", "url": "http://p", "token": "x"}, "has unknown key(s) token; valid keys are type, url"),
    ({"type": "dcm4chee", "url": "http://p"}, "type must be one of orthanc (the archives whose REST API can echo), "
                                              "got 'dcm4chee'"),
    ({"type": "orthanc", "url": "http://u:%s@p" % SECRET}, "url must not carry credentials"),
    ({"type": "orthanc", "url": "http://p", "password": SECRET}, "password is set but username is not"),
    ({"type": "orthanc", "url": "http://p", "validate_certs": "no"}, "validate_certs must be a boolean, got str"),
])
def test_bad_echo_api_names_the_key_and_never_the_password(value, words):
    with pytest.raises(EchoApiError) as info:
        check_echo_api(value)
    assert words in str(info.value) and SECRET not in str(info.value)


def test_api_peers_keep_only_what_an_archive_can_echo():
    assert api_peers([{"name": "a", "ae_title": "A", "host": "h", "port": 104, "expect": "accept",
                       "calling_ae_title": "PACS", "tls": {"enabled": True}, "services": ["CTImageStorage"]}]) == [
        {"name": "a", "ae_title": "A", "host": "h", "port": 104, "expect": "accept", "calling_ae_title": "PACS"}]


def test_rows_say_via_the_api():
    assert api_label("Orthanc REST at http://p") == "Orthanc REST"
    assert api_label("probe-1") is None and api_label(None) is None


DRIFT = {
    "in_sync": False, "summary": {"compared": 2}, "unknown": [],
    "missing": [{"name": "mr", "ae_title": "MR", "host": "h", "port": 104}],
    "mismatches": [{"name": "ws", "modality": "ws1", "field": "port", "registry": 104, "orthanc": 11113}],
}
PLANS = {"pacs": {"echo_api": {"type": "orthanc", "url": "http://p"}}, "ct": {"calls": []}}


def test_the_section_comes_from_the_archives_call_and_says_why_when_there_is_none():
    call = {"drift": DRIFT, "orthanc": {"ae_title": "PACS", "version": "1.10.1"}}
    section = archive_section(PLANS, {"pacs": {"results": [call]}})
    (archive,) = section["archives"]
    assert (archive["source_host"], archive["ae_title"], archive["in_sync"], section["drifted"]) == (
        "pacs", "PACS", False, 1)
    assert [difference_text(d) for d in archive["differences"]] == [
        "mr (MR@h:104) is not a modality of the archive",
        "ws: port is 11113 in the archive's modality ws1, 104 in the registry"]
    assert drift_problems(section) == ["pacs (2 difference(s))"]
    failed = archive_section(PLANS, {"pacs": {"results": [{"failed": True, "msg": "HTTP 401"}]}})
    assert failed["archives"][0]["error"] == "HTTP 401" and drift_problems(failed) == []
    assert archive_section(PLANS, {})["archives"][0]["error"].startswith("no result")
    assert archive_section({"ct": {"calls": []}}, {}) is None


def test_sections_of_slices_merge_with_each_archive_once():
    one = archive_section(PLANS, {"pacs": {"results": [{"drift": DRIFT}]}})
    other = archive_section({"pacs-b": {"echo_api": {"type": "orthanc", "url": "http://b"}}},
                            {"pacs-b": {"results": [{"drift": dict(DRIFT, in_sync=True, missing=[], mismatches=[])}]}})
    merged = merge_archive_sections([one, None, other, one])
    assert [a["source_host"] for a in merged["archives"]] == ["pacs", "pacs-b"]
    assert (merged["drifted"], merged["differences"]) == (1, 2)
    assert merge_archive_sections([None, {}]) is None
