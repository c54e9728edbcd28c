"""The listener's option checks, its error lines and how it words what it saw (no sockets)."""
from __future__ import annotations

import errno

import pytest

from ansible_collections.dicom.network.plugins.module_utils.echo_validation import EchoInputError
from ansible_collections.dicom.network.plugins.module_utils.listen_scp import (
    _Connection,
    _describe,
    _Listener,
    _result,
    bind_problem,
    validate_listen,
)

BASE = {"ae_title": "NEWCT", "port": 11112}


def test_defaults():
    request = validate_listen(BASE)
    assert (request.bind_address, request.duration, request.idle_timeout, request.fail_on) == ("0.0.0.0", 300.0, 10.0, "missing")
    assert request.reject == (1, 1, 3)
    assert request.allowed_calling_ae_titles is None and request.allowed_source_addresses is None
    assert request.check_called_ae_title is True and request.expect_callers == []


def test_reject_by_name_or_code_and_titles_trimmed_and_deduplicated():
    request = validate_listen(dict(BASE, reject={"result": "transient", "source": 3, "reason": "local-limit-exceeded"},
                                   expect_callers=["PACS ", "PACS", "ROUTER"]))
    assert request.reject == (2, 3, 2)
    # Only a source: that source's usual reason.
    for source, expected in (("service-provider-presentation", (1, 3, 2)), ("service-provider-acse", (1, 2, 1)),
                             ("service-user", (1, 1, 3))):
        assert validate_listen(dict(BASE, reject={"source": source, "reason": None})).reject == expected
    assert request.expect_callers == ["PACS", "ROUTER"]


@pytest.mark.parametrize("change, message", [
    ({"port": 0}, "port must be an integer between 1 and 65535, got 0"),
    ({"port": True}, "port must be an integer between 1 and 65535, got True"),
    ({"ae_title": ""}, "ae_title "),
    ({"bind_address": "device.example.org"}, "bind_address must be an IP address of this host"),
    ({"duration": 86401}, "duration must be a number of seconds above 0 and at most 86400, got 86401"),
    ({"idle_timeout": -1}, "idle_timeout must be a number of seconds above 0"),
    ({"expect_callers": "PACS"}, "expect_callers must be a list of AE titles, got str"),
    ({"allowed_calling_ae_titles": ["OK", "X" * 17]}, "allowed_calling_ae_titles[1] "),
    ({"allowed_source_addresses": ["10.0.0.0/8", "nowhere"]}, "allowed_source_addresses[1] must be an IP address or a network"),
    ({"reject": {"result": "forever"}}, "reject.result must be one of permanent, transient, got 'forever'"),
    ({"reject": {"why": "x"}}, "reject has unknown key(s) why"),
    ({"reject": {"source": "service-provider-acse", "reason": "calling-ae-title-not-recognized"}},
     "reject.reason (for source service-provider-acse) must be one of no-reason-given, protocol-version-not-supported"),
    ({"fail_on": "always"}, "fail_on must be one of missing, never"),
    ({"stop_file": "stop"}, "stop_file must be an absolute path on this host, got 'stop'"),
    ({"stop_file": "/nonexistent-dir/stop"}, "stop_file /nonexistent-dir/stop: its directory does not exist"),
    ({"stop_file": "/"}, "stop_file / exists already"),
    ({"expect_callers": ["PACS"], "expect_rejected": ["PACS"]}, "expect_callers and expect_rejected both list PACS"),
])
def test_each_mistake_names_its_field(change, message):
    with pytest.raises(EchoInputError) as raised:
        validate_listen(dict(BASE, **change))
    assert message in str(raised.value)


@pytest.mark.parametrize("code, text", [
    (errno.EADDRINUSE, "0.0.0.0 port 11112 is already in use on this host"),
    (errno.EACCES, "ports below 1024 need root or CAP_NET_BIND_SERVICE"),
    (errno.EADDRNOTAVAIL, "bind_address 0.0.0.0 is not an address of this host"),
    (errno.ENOBUFS, "cannot listen on 0.0.0.0 port 11112: "),
])
def test_bind_problems_say_the_fix(code, text):
    assert text in bind_problem(OSError(code, "x"), validate_listen(BASE))


def _conn(**fields):
    conn = _Connection("10.1.0.5", 50412)
    for key, value in fields.items():
        setattr(conn, key, value)
    return conn


def test_decisions_called_title_first_then_calling_then_address():
    listener = _Listener(validate_listen(dict(BASE, allowed_calling_ae_titles=["PACS"],
                                              allowed_source_addresses=["10.1.0.0/24"])))
    wrong_called = _conn(calling_ae_title="INTRUDER", called_ae_title="OLDCT")
    assert listener.decide(wrong_called) == (1, 1, 7)
    assert wrong_called.reject["why"] == "called AE title OLDCT is not NEWCT"
    assert listener.decide(_conn(calling_ae_title="INTRUDER", called_ae_title="NEWCT")) == (1, 1, 3)
    elsewhere = _conn(calling_ae_title="PACS", called_ae_title="NEWCT", source_address="::ffff:10.2.0.5")
    assert listener.decide(elsewhere) == (1, 1, 3)
    assert elsewhere.reject["why"] == "source address ::ffff:10.2.0.5 is not in allowed_source_addresses"
    assert listener.decide(_conn(calling_ae_title="PACS", called_ae_title="NEWCT", source_address="::ffff:10.1.0.9")) is None


def test_what_each_connection_is_called():
    assert _describe(_conn(ended="idle"), 10)["message"] == \
        "10.1.0.5:50412 connected and sent no A-ASSOCIATE-RQ within 10 s: closed by the listener"
    assert _describe(_conn(calling_ae_title="STORE", called_ae_title="NEWCT", accepted=True,
                           proposed=["CTImageStorage"], ended="released"), 10)["outcome"] == "associated"
    aborted = _describe(_conn(calling_ae_title="WS", called_ae_title="NEWCT", accepted=True,
                              verification_accepted=True, ended="aborted or closed by the caller"), 10)
    assert aborted["outcome"] == "aborted"
    echoed = _describe(_conn(calling_ae_title="WS", called_ae_title="NEWCT", accepted=True, echoes=2,
                             ended="aborted or closed by the caller"), 10)
    assert echoed["outcome"] == "echoed"
    assert echoed["message"] == "10.1.0.5:50412 as WS calling NEWCT: 2 C-ECHO answered with success; aborted or closed by the caller"


def test_result_counts_callers_and_names_the_missing():
    request = validate_listen(dict(BASE, expect_callers=["PACS", "ROUTER"], expect_rejected=["OLDWS"]))
    records = [_describe(_conn(calling_ae_title="PACS", called_ae_title="NEWCT", accepted=True, echoes=1), 10),
               _describe(_conn(calling_ae_title="PACS", called_ae_title="NEWCT", source_address="10.9.9.9",
                               reject={"result": "permanent", "source": "service-user",
                                       "reason": "calling-ae-title-not-recognized", "why": "x"}), 10),
               _describe(_conn(), 10)]
    result = _result(request, records, {"listened_s": 4.0})
    assert result["missing_callers"] == ["ROUTER", "OLDWS"]
    assert result["callers"] == [{"ae_title": "PACS", "expected": "echo", "echoed": True, "rejected": True,
                                  "associations": 2, "echoes": 1, "source_addresses": ["10.1.0.5", "10.9.9.9"]}]
    assert result["msg"] == ("listened 4.0 s on 0.0.0.0 port 11112 as NEWCT: 3 connection(s) (1 echoed, 1 rejected, "
                             "1 no_association); expected caller(s) never seen as expected: ROUTER, OLDWS")
