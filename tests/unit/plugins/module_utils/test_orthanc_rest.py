"""orthanc_rest: Orthanc's answers (measured on 1.10.1, verbatim) to outcomes, peers to modalities, the registry
against the modality table, and the HTTP failures to one line that never holds the password."""
from __future__ import annotations

import http.client
import io
import json
import socket
import ssl
import urllib.error

import pytest

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import EchoInputError, validate_request
from ansible_collections.dicom.network.plugins.module_utils.orthanc_rest import (
    OrthancApiError,
    OrthancClient,
    OrthancHttpTimeout,
    answer_problem,
    check_echo_timeout,
    check_registry,
    classify_echo_answer,
    compare_registry,
    drift_message,
    echo_one,
    plan_echoes,
    read_modalities,
    read_system,
    split_peers,
)
from ansible_collections.dicom.network.plugins.module_utils.rest_url import check_url

PASSWORD = "s3cret-Pw!"


def orthanc_error(details, message="Error in the network protocol", status=9, uri="/modalities/ws/echo"):
    """An error body exactly as Orthanc 1.10.1 writes it (tab-indented, no Content-Type)."""
    body = {"Details": details, "HttpError": "Internal Server Error", "HttpStatus": 500, "Message": message,
            "Method": "POST", "OrthancError": message, "OrthancStatus": status, "Uri": uri}
    return json.dumps(body, indent="\t")


def connecting(text, aet="WS"):
    return orthanc_error('DicomAssociation - connecting to AET "%s": %s' % (aet, text))


def echoing(text, aet="WS"):
    return orthanc_error('DicomAssociation - C-ECHO to AET "%s": %s' % (aet, text))


# Every row was measured against a real peer (tests/system/test_orthanc_echo.py asserts the same table live).
MEASURED = [
    # peer behaviour, HTTP status, body, outcome, phase
    ("accepting SCP", 200, "{}", "success", "release"),
    ("closed port", 500, connecting("TCP Initialization Error: Connection refused"), "refused", "connect"),
    ("dropped SYN (iptables DROP)", 500, connecting("TCP Initialization Error: Operation now in progress (Timeout)"),
     "timeout", "connect"),
    ("icmp host unreachable", 500, connecting("TCP Initialization Error: No route to host"), "unreachable", "connect"),
    ("icmp net unreachable", 500, connecting("TCP Initialization Error: Network is unreachable"),
     "unreachable", "connect"),
    ("TCP reset at once", 500, connecting("TCP Initialization Error: Connection reset by peer"),
     "aborted", "associate"),
    ("host that does not resolve", 500, connecting("Attempt to connect to unknown host: 127.0.0.256"),
     "dns_error", "resolve"),
    ("UseDicomTls to a plain peer", 500, connecting("TLS error: wrong version number"), "tls_error", "tls"),
    ("UseDicomTls, untrusted certificate", 500, connecting("TLS error: certificate verify failed"),
     "tls_error", "tls"),
    ("calling AE refused (RJ 1/1/3)", 500, connecting("DUL Association Rejected"), "rejected", "associate"),
    ("silent listener", 500, connecting("DUL network read timeout"), "timeout", "associate"),
    ("closes without a PDU / A-ABORT", 500, connecting("Peer aborted Association (or never connected)"),
     "aborted", "associate"),
    ("answers HTTP", 500, connecting("Unrecognized PDU type: 48"), "protocol_error", "associate"),
    ("no Verification context", 500,
     orthanc_error('Unable to negotiate a presentation context with AET "CT_ONLY_SCP"',
                   "DicomUserConnection: No acceptable presentation context for modality", 2015),
     "context_rejected", "associate"),
    ("A-ABORT at the C-ECHO", 500, echoing("Peer aborted Association (or never connected)"), "aborted", "echo"),
    ("C-ECHO answered after the timeout", 500, echoing("DIMSE No data available (timeout in non-blocking mode)"),
     "timeout", "echo"),
    ("C-ECHO status 0xC000 or 0x0122", 500, "", "status_failure", "echo"),
]


@pytest.mark.parametrize("behaviour, http_status, body, outcome, phase", MEASURED, ids=[m[0] for m in MEASURED])
def test_each_measured_answer_has_its_outcome_and_keeps_orthancs_words(behaviour, http_status, body, outcome, phase):
    answer = classify_echo_answer(http_status, body, 3)
    assert (answer.verdict.outcome, answer.verdict.phase) == (outcome, phase), behaviour
    assert answer.http_status == http_status
    if body.strip() not in ("", "{}"):
        details = json.loads(body)["Details"]
        assert details in answer.verdict.message  # verbatim
        assert answer.details == details
    assert answer.verdict.reject is None


def test_success_has_status_zero_and_failures_have_no_status():
    assert classify_echo_answer(200, "{}", 3).verdict.status == 0
    assert classify_echo_answer(500, "", 3).verdict.status is None
    assert "does not say which" in classify_echo_answer(500, "", 3).verdict.message


def test_timeouts_name_the_seconds():
    assert "within 7 s" in classify_echo_answer(500, connecting("DUL network read timeout"), 7).verdict.message


def test_an_unknown_error_is_quoted_and_meets_no_expectation():
    answer = classify_echo_answer(500, connecting("DUL Illegal service parameter"), 3)
    assert answer.verdict.outcome == "protocol_error"
    assert 'DicomAssociation - connecting to AET "WS": DUL Illegal service parameter' in answer.verdict.message
    assert "does not classify" in answer.verdict.message
    other = classify_echo_answer(500, "<html>oops</html>", 3)
    assert other.verdict.outcome == "protocol_error" and "oops" in other.verdict.message


# --------------------------------------------------------------------------- input
@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8042", "http://127.0.0.1:8042"),
    ("https://pacs.example.org:8042/orthanc/", "https://pacs.example.org:8042/orthanc"),
])
def test_url_is_normalised(url, expected):
    assert check_url(url) == expected


@pytest.mark.parametrize("url, words", [
    ("ftp://pacs", "must start with http:// or https://"),
    ("http://user:%s@pacs:8042" % PASSWORD, "must not carry credentials"),
    ("http://pacs:8042/?x=1", "without a query"),
    ("http://:8042", "has no host"),
    ("", "must be the base URL"),
    ("http://pacs:99999", "not a valid URL"),
])
def test_bad_urls_are_refused_without_echoing_the_password(url, words):
    with pytest.raises(EchoInputError, match=words) as info:
        check_url(url)
    assert PASSWORD not in str(info.value)


def test_timeout_must_be_whole_seconds():
    assert check_echo_timeout(3) == 3
    with pytest.raises(EchoInputError, match="whole number of seconds"):
        check_echo_timeout(2.5)
    with pytest.raises(EchoInputError, match="between 1 and 3600"):
        check_echo_timeout(0)


def test_peers_keep_their_modality_and_refuse_echo_only_keys():
    plain, modalities = split_peers([{"ae_title": "A", "host": "h", "modality": "ws1"}, {"ae_title": "B", "host": "h"}])
    assert plain == [{"ae_title": "A", "host": "h"}, {"ae_title": "B", "host": "h"}]
    assert modalities == ["ws1", None]
    with pytest.raises(EchoInputError, match=r"peers\[0\] \(A\) has unknown key\(s\) tls; valid keys are"):
        split_peers([{"ae_title": "A", "host": "h", "tls": {"enabled": True}}])


def test_registry_is_checked_per_entry():
    registry = check_registry({"ws": {"ae_title": " WS ", "host": "10.0.0.5", "port": "104", "site": "A"}})
    assert registry == {"ws": {"ae_title": "WS", "host": "10.0.0.5", "port": 104, "site": "A"}}
    with pytest.raises(EchoInputError, match=r"registry.ws.port must be an integer between 1 and 65535, got 'x'"):
        check_registry({"ws": {"ae_title": "WS", "host": "h", "port": "x"}})
    with pytest.raises(EchoInputError, match="registry.ws.ae_title must be at most 16 characters"):
        check_registry({"ws": {"ae_title": "W" * 17, "host": "h"}})
    with pytest.raises(EchoInputError, match="registry.ws.host '10.010.0.1' is ambiguous"):
        check_registry({"ws": {"ae_title": "WS", "host": "10.010.0.1"}})


# --------------------------------------------------------------------------- peers to modalities
MODALITIES = {
    "ws1": {"AET": "WS1", "Host": "10.0.0.51", "Port": 11113, "LocalAet": "", "UseDicomTls": False},
    "ct": {"AET": "CT_A1", "Host": "10.0.0.41", "Port": 104, "LocalAet": "ARCHIVE_CT", "UseDicomTls": True},
    "dup-a": {"AET": "DUP", "Host": "10.0.0.60", "Port": 104},
    "dup-b": {"AET": "DUP", "Host": "10.0.0.61", "Port": 104},
}


def plans_for(peers, orthanc_ae="PACS"):
    plain, modality_ids = split_peers(peers)
    specs = validate_request({"peers": plain}).peers
    return plan_echoes(specs, modality_ids, [p.get("calling_ae_title") is not None for p in peers], MODALITIES,
                       orthanc_ae)


def test_registered_peer_uses_orthancs_entry_and_its_local_aet():
    ws, ct, other = plans_for([{"ae_title": "WS1", "host": "10.0.0.51", "port": 11112},
                               {"ae_title": "CT_A1", "host": "10.0.0.41"},
                               {"ae_title": "LAB", "host": "10.0.0.90"}])
    assert (ws.modality, ws.calling_ae_title, ws.target["port"], ws.tls) == ("ws1", "PACS", 11113, False)
    assert (ct.modality, ct.calling_ae_title, ct.tls) == ("ct", "ARCHIVE_CT", True)
    assert (other.modality, other.calling_ae_title, other.target["port"]) == (None, "PACS", 104)


def test_several_modalities_with_one_ae_title_need_the_address_or_a_name():
    (plan,) = plans_for([{"ae_title": "DUP", "host": "10.0.0.61"}])
    assert plan.modality == "dup-b"
    with pytest.raises(EchoInputError, match=r"Orthanc has 2 modalities with AE title DUP \(dup-a, dup-b\); set "
                                             r"peers\[0\].modality"):
        plans_for([{"ae_title": "DUP", "host": "10.0.0.70"}])
    (named,) = plans_for([{"ae_title": "DUP", "host": "10.0.0.70", "modality": "dup-a"}])
    assert named.modality == "dup-a"


def test_unknown_modality_and_a_calling_ae_orthanc_does_not_use_fail_before_any_echo():
    with pytest.raises(EchoInputError, match=r"peers\[0\] \(WS1\).modality 'nosuch' is not a modality of the Orthanc "
                                             r"at hand \(its modalities: ct, dup-a, dup-b, ws1\)"):
        plans_for([{"ae_title": "WS1", "host": "h", "modality": "nosuch"}])
    with pytest.raises(EchoInputError, match=r"calling_ae_title is CT_X, but Orthanc calls modality 'ct' as "
                                             r"ARCHIVE_CT \(its LocalAet\)"):
        plans_for([{"ae_title": "CT_A1", "host": "10.0.0.41", "calling_ae_title": "CT_X"}])
    (same,) = plans_for([{"ae_title": "CT_A1", "host": "10.0.0.41", "calling_ae_title": "ARCHIVE_CT"}])
    assert same.calling_ae_title == "ARCHIVE_CT"
    (unregistered,) = plans_for([{"ae_title": "LAB", "host": "h", "calling_ae_title": "OTHER"}])
    assert unregistered.calling_ae_title == "OTHER" and unregistered.calling_given


# --------------------------------------------------------------------------- drift
def test_drift_finds_missing_unknown_and_each_mismatched_field():
    registry = check_registry({
        "archive": {"ae_title": "PACS", "host": "10.0.0.10"},  # Orthanc itself
        "ws_1": {"ae_title": "WS1", "host": "10.0.0.51", "port": 11112},  # wrong port in Orthanc
        "ct": {"ae_title": "CT_A1", "host": "10.0.0.41"},  # in sync
        "mr": {"ae_title": "MR_B1", "host": "10.0.0.42"},  # missing
        "us": {"ae_title": "US_1", "host": "10.0.0.43"},  # AE title typo in Orthanc (found by id "us")
        "xr": {"ae_title": "XR_1", "host": "10.0.0.44", "port": 104},  # typo and old id: found by address
    })
    modalities = dict(MODALITIES, us={"AET": "US_I", "Host": "10.0.0.43", "Port": 104},
                      old={"AET": "XR_L", "Host": "10.0.0.44", "Port": 104})
    drift = compare_registry(registry, modalities, "PACS")
    assert drift["skipped"] == ["archive"]
    assert drift["missing"] == [{"name": "mr", "ae_title": "MR_B1", "host": "10.0.0.42", "port": 104}]
    assert [u["modality"] for u in drift["unknown"]] == ["dup-a", "dup-b"]
    assert drift["mismatches"] == [
        {"name": "us", "modality": "us", "field": "ae_title", "registry": "US_1", "orthanc": "US_I"},
        {"name": "ws_1", "modality": "ws1", "field": "port", "registry": 11112, "orthanc": 11113},
        {"name": "xr", "modality": "old", "field": "ae_title", "registry": "XR_1", "orthanc": "XR_L"},
    ]
    assert drift["matched"] == [{"name": "ct", "modality": "ct"}]
    assert drift["summary"] == {"compared": 5, "matched": 1, "missing": 1, "unknown": 2, "mismatches": 3}
    assert drift["in_sync"] is False
    line = drift_message(drift)
    assert line.startswith("configuration drift: missing in Orthanc: mr (MR_B1); unknown to the registry: dup-a (DUP)")
    assert "ws_1 port 11113 in Orthanc's 'ws1', 11112 in the registry" in line


def test_host_is_compared_as_written_without_case():
    registry = check_registry({"ws": {"ae_title": "WS1", "host": "WS1.Example.org", "port": 11113}})
    drift = compare_registry(registry, {"ws1": {"AET": "WS1", "Host": "ws1.example.org", "Port": 11113}}, "PACS")
    assert drift["in_sync"] is True and drift_message(drift) == "Orthanc's modality table matches the registry (1 AE(s))"
    other = compare_registry(registry, {"ws1": {"AET": "WS1", "Host": "10.0.0.51", "Port": 11113}}, "PACS")
    assert other["mismatches"] == [{"name": "ws", "modality": "ws1", "field": "host", "registry": "WS1.Example.org",
                                    "orthanc": "10.0.0.51"}]


# --------------------------------------------------------------------------- HTTP
class FakeResponse:
    def __init__(self, status, body, headers=None):
        self.status, self.body, self.headers = status, body.encode(), headers or {}

    def getcode(self):
        return self.status

    def read(self):
        return self.body

    def close(self):
        pass


def client_answering(*answers):
    """A client whose requests get ``answers`` in turn (a response, or an exception to raise)."""
    calls = []

    def opener(url, **kwargs):
        calls.append((url, kwargs))
        answer = answers[min(len(calls), len(answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    client = OrthancClient(url="http://127.0.0.1:8042", username="u", password=PASSWORD, opener=opener)
    return client, calls


def http_error(status, body="", headers=None):
    return urllib.error.HTTPError("http://127.0.0.1:8042/system", status, "x", headers or {}, io.BytesIO(body.encode()))


SYSTEM = json.dumps({"ApiVersion": 16, "DicomAet": "ORTHANC", "DicomPort": 4242, "Name": "test", "Version": "1.10.1"})


def test_requests_send_basic_auth_follow_no_redirect_and_read_no_netrc():
    client, calls = client_answering(FakeResponse(200, SYSTEM))
    assert read_system(client)["ae_title"] == "ORTHANC"
    url, kwargs = calls[0]
    assert url == "http://127.0.0.1:8042/system"
    assert kwargs["force_basic_auth"] is True and kwargs["url_password"] == PASSWORD
    assert kwargs["follow_redirects"] == "none" and kwargs["use_netrc"] is False
    assert kwargs["timeout"] == 10.0


@pytest.mark.parametrize("answer, words", [
    (http_error(401), "refused the credentials (HTTP 401 on GET /system): check username and password"),
    (http_error(403), "forbids GET /system (HTTP 403)"),
    (http_error(302, headers={"Location": "http://sso/login"}), "redirected GET /system (HTTP 302 to http://sso/login)"),
    (http_error(404, "<html><body>Not Found</body></html>", {"Content-Type": "text/html"}),
     "http://127.0.0.1:8042 is not an Orthanc REST API: GET /system answered HTTP 404 (text/html): <html><body>Not Found"),
    (FakeResponse(200, "<html>login</html>", {"Content-Type": "text/html"}),
     "is not an Orthanc REST API: GET /system answered HTTP 200 (text/html): <html>login</html>"),
    (FakeResponse(200, '{"status": "ok"}'), "is not an Orthanc REST API: GET /system answered JSON without DicomAet"),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
     "cannot reach the Orthanc REST API at http://127.0.0.1:8042: connection refused"),
    (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),
     "cannot resolve the host of the Orthanc REST API at http://127.0.0.1:8042: Name or service not known"),
    (http.client.RemoteDisconnected("Remote end closed connection without response"),
     "closed the connection without an HTTP answer"),
    (urllib.error.URLError(ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate")),
     "cannot verify the TLS certificate of the Orthanc REST API at http://127.0.0.1:8042"),
])
def test_api_failures_are_one_line_naming_the_url_never_the_password(answer, words):
    client, _calls = client_answering(answer)
    with pytest.raises(OrthancApiError) as info:
        read_system(client)
    assert words in str(info.value)
    assert PASSWORD not in str(info.value) and "\n" not in str(info.value)


def test_a_timeout_is_its_own_error():
    client, _calls = client_answering(socket.timeout("timed out"))
    with pytest.raises(OrthancHttpTimeout, match=r"did not answer GET /system within 10 s"):
        read_system(client)
    client, _calls = client_answering(urllib.error.URLError(socket.timeout("timed out")))
    with pytest.raises(OrthancHttpTimeout):
        read_system(client)


def test_https_that_drops_the_connection_names_orthancs_ssl_crash():
    client, _calls = client_answering(http.client.RemoteDisconnected("x"))
    client.url = "https://127.0.0.1:8042"
    with pytest.raises(OrthancApiError, match="crashes on every HTTPS request when SslEnabled is set"):
        read_system(client)


def test_modalities_must_be_an_object():
    client, _calls = client_answering(FakeResponse(200, '["ws1"]'))
    with pytest.raises(OrthancApiError, match=r"answered GET /modalities\?expand with list"):
        read_modalities(client)


def test_answer_problem_quotes_orthancs_own_error():
    text = answer_problem("http://x", "POST", "/tools/dicom-echo", 400, {}, json.dumps({
        "Details": "Integer value expected in field: Timeout", "HttpStatus": 400, "Message": "Bad file format",
        "OrthancStatus": 15}))
    assert text == ("the Orthanc REST API at http://x answered POST /tools/dicom-echo with HTTP 400: Bad file format "
                    "(OrthancStatus 15): Integer value expected in field: Timeout")


def test_an_echo_orthanc_does_not_answer_in_time_is_a_timeout_that_meets_no_expectation():
    client, calls = client_answering(socket.timeout("timed out"))
    (plan,) = plans_for([{"ae_title": "WS1", "host": "10.0.0.51", "expect": "blocked"}])
    result = echo_one(client, {"ae_title": "PACS"}, plan, 3)
    assert calls[0][1]["timeout"] == 4 * 3 + 10.0  # every DCMTK step may take the whole timeout
    assert (result["outcome"], result["phase"], result["ok"]) == ("timeout", "echo", False)
    assert result["message"].startswith("Orthanc did not answer the echo request within 22 s (4 x timeout 3 s + "
                                        "http_timeout); echoed by Orthanc at http://127.0.0.1:8042 as AE PACS through "
                                        "modality 'ws1'")
    assert result["orthanc"]["http_status"] is None
    assert json.loads(calls[0][1]["data"]) == {"Timeout": 3}


def test_an_unregistered_peer_is_posted_to_tools_dicom_echo_with_its_local_aet():
    client, calls = client_answering(FakeResponse(200, "{}"))
    (plan,) = plans_for([{"ae_title": "LAB", "host": "10.0.0.90", "port": 11112, "calling_ae_title": "AS_LAB"}])
    result = echo_one(client, {"ae_title": "PACS"}, plan, 5)
    assert calls[0][0] == "http://127.0.0.1:8042/tools/dicom-echo" and calls[0][1]["method"] == "POST"
    assert json.loads(calls[0][1]["data"]) == {"AET": "LAB", "Host": "10.0.0.90", "Port": 11112, "Timeout": 5,
                                               "LocalAet": "AS_LAB"}
    assert (result["outcome"], result["calling_ae_title"], result["echoed_by"]) == (
        "success", "AS_LAB", "Orthanc at http://127.0.0.1:8042 as AE AS_LAB")


def test_results_have_every_key_of_the_echo_modules_results():
    import ast
    import re
    from pathlib import Path

    import yaml

    echo_module = Path(__file__).resolve().parents[4] / "plugins" / "modules" / "echo.py"
    tree = ast.parse(echo_module.read_text())
    returns = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], "id", None) == "RETURN")
    keys = {k for k, v in yaml.safe_load(returns)["results"]["contains"].items()
            if not re.search(r"when O\(debug", str(v.get("returned", "")))}
    client, _calls = client_answering(FakeResponse(200, "{}"))
    (plan,) = plans_for([{"ae_title": "WS1", "host": "10.0.0.51"}])
    result = echo_one(client, {"ae_title": "PACS"}, plan, 3)
    assert keys - set(result) == set()
    assert set(result) - keys == {"echoed_by", "orthanc"}


def test_only_required_aes_can_be_missing_but_every_registry_ae_is_known():
    registry = check_registry({"ws": {"ae_title": "WS1", "host": "10.0.0.51", "port": 11113},
                               "far": {"ae_title": "FAR", "host": "10.9.0.1"},
                               "old": {"ae_title": "CT_A1", "host": "10.0.0.41"}})
    drift = compare_registry(registry, {"ws1": MODALITIES["ws1"], "ct": MODALITIES["ct"]}, "PACS", required=["ws"])
    assert drift["missing"] == [] and drift["unknown"] == [] and drift["summary"]["compared"] == 1


def test_an_ae_that_only_calls_is_known_by_its_ae_title():
    registry = check_registry({"ct": {"ae_title": "CT_A1"}, "mr": {"ae_title": "MR_1"}})
    assert registry["ct"]["host"] is None
    drift = compare_registry(registry, {"ct": MODALITIES["ct"]}, "PACS", required=["ct"])
    assert drift["matched"] == [{"name": "ct", "modality": "ct"}] and drift["in_sync"]
    with pytest.raises(EchoInputError, match="registry.x.host is required with port"):
        check_registry({"x": {"ae_title": "X", "port": 104}})
