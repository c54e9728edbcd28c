"""The go-live check's logic: who must call the device, and how both sides' views of each call are judged."""
from __future__ import annotations

import pytest

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import build_packed, matrix_of
from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import build_view, render_reports
from ansible_collections.dicom.network.plugins.plugin_utils.audit_standin import standin_plan, standin_section
from tests.unit.plugins.plugin_utils.test_audit_matrix import plan, registered
from tests.unit.plugins.plugin_utils.test_audit_report import TEMPLATES_DIR as TEMPLATES

WS_ADDRESS = {"ct1": "192.0.2.41", "cr1": "198.51.100.41", "ws1": "192.0.2.61"}


def _plans():
    return {"probe-a": plan("probe-a", ["ct1"], ["archive"]),
            "probe-b": plan("probe-b", ["cr1"], ["archive"]),
            "ws-1": plan("ws-1", ["ws1"], [{"name": "archive", "expect": "reject"}])}


def test_the_plan_lists_callers_by_expectation():
    standin, errors = standin_plan(_plans(), "archive")
    assert errors == []
    assert standin == {"name": "archive", "ae_title": "ARCHIVE", "host": "192.0.2.10", "port": 104,
                       "accept": ["CR1", "CT1"], "reject": ["WS1"], "blocked": []}


def test_the_devices_services_are_not_asked_of_its_stand_in():
    plans = dict(_plans(), **{"ws-2": plan("ws-2", ["ct1"], [{"name": "archive", "services": ["CTImageStorage"]},
                                                             {"name": "mwl", "discover": "worklist"}])})
    standin_plan(plans, "archive")
    assert plans["ws-2"]["calls"][0]["peers"][0] == {"name": "archive", "ae_title": "ARCHIVE", "host": "192.0.2.10",
                                                     "port": 104, "expect": "accept"}
    assert plans["ws-2"]["calls"][0]["peers"][1]["discover"] == "worklist"


def test_nobody_calling_the_device_and_one_title_both_accepted_and_refused_are_errors():
    assert standin_plan(_plans(), "mwl") == (None, [
        "echo_audit_standin_device: no source host in this play lists mwl among its peers (dicom_peers): nobody "
        "would call the stand-in"])
    plans = dict(_plans(), **{"ws-2": plan("ws-2", ["ct1"], [{"name": "archive", "expect": "blocked"}])})
    _standin, errors = standin_plan(plans, "archive")
    assert errors == ["echo_audit_standin_device: calling AE title CT1 is to reach archive from probe-a (expect accept) "
                      "and to be refused from ws-2 (expect blocked): one stand-in cannot both accept and refuse one "
                      "calling AE title"]


def _record(calling, outcome, source, called="ARCHIVE", message=None):
    return {"started_at": "2025-01-02T03:04:05.000Z", "source_address": source, "source_port": 40000,
            "calling_ae_title": calling, "called_ae_title": called, "outcome": outcome,
            "message": message or "%s as %s: %s" % (source, calling, outcome)}


def _section(outcomes, records, result_extra=None, sent_from=None):
    plans = _plans()
    results = {}
    for host, the_plan in plans.items():
        echo = registered(the_plan, {"archive": outcomes.get(host, "success")})
        for item in echo["results"]:
            for answer in item["results"]:
                answer["source_address"] = (sent_from or {}).get(host) or WS_ADDRESS[the_plan["calls"][0]["calling"]]
        results[host] = echo
    report = build_packed(plans, results, "2025-01-02T03:04:05Z")
    standin = standin_plan(plans, "archive")[0]
    result = {"associations": records, "listener": {"stopped_because": "stop file"}}
    result.update(result_extra or {})
    report["standin"] = standin_section(matrix_of(report), {"plan": standin, "host": "staging", "result": result})
    return report


def _findings(report):
    return {caller["source_host"]: (caller["ok"], caller["finding"]) for caller in report["standin"]["callers"]}


def test_both_sides_agree():
    report = _section({"ws-1": "rejected"}, [
        _record("CT1", "echoed", "192.0.2.41"), _record("CR1", "echoed", "198.51.100.41"),
        _record("WS1", "rejected", "192.0.2.61")])
    assert _findings(report) == {"probe-a": (True, "echoed by the stand-in, as expected"),
                                 "probe-b": (True, "echoed by the stand-in, as expected"),
                                 "ws-1": (True, "turned away by the stand-in, as expected")}
    assert report["standin"]["problems"] == [] and report["standin"]["others"] == []


def test_nat_is_shown_but_not_a_problem():
    report = _section({"ws-1": "rejected"}, [
        _record("CT1", "echoed", "10.9.9.9"), _record("CR1", "echoed", "198.51.100.41"),
        _record("WS1", "rejected", "192.0.2.61")])
    ok, finding = _findings(report)["probe-a"]
    assert ok is True
    assert finding == ("the stand-in saw it from 10.9.9.9, the caller sent it from 192.0.2.41: NAT or another route on "
                       "the way (the device must be configured for 10.9.9.9)")


def test_an_answer_from_somewhere_else_and_a_caller_that_never_arrived_are_problems():
    report = _section({"probe-b": "timeout", "ws-1": "rejected"}, [_record("WS1", "rejected", "192.0.2.61")])
    findings = _findings(report)
    assert findings["probe-a"] == (False, "the caller's echo was answered, but the stand-in saw nothing: the registry's "
                                          "address or port leads somewhere else (another device, an old entry?)")
    assert findings["probe-b"][0] is False
    assert findings["probe-b"][1].startswith("never reached the stand-in: echo timeout")
    assert report["standin"]["counts"] == {"callers": 3, "ok": 1, "problems": 2, "others": 0}


def test_a_stand_in_that_did_not_run_fails_every_call_with_its_reason():
    report = _section({}, [], result_extra={"associations": None, "msg": "0.0.0.0 port 104 is already in use"})
    assert report["standin"]["error"] == "the stand-in did not run on staging: 0.0.0.0 port 104 is already in use"
    assert all(not ok for ok, _finding in _findings(report).values())


HOSTILE = "<img src=x onerror=alert(1)>|*_"


def test_what_strangers_send_is_escaped_in_every_format():
    report = _section({"ws-1": "rejected"}, [
        _record(HOSTILE[:16], "rejected", "192.0.2.99", called=HOSTILE[16:]), _record("WS1", "rejected", "192.0.2.61")])
    (other,) = report["standin"]["others"]
    assert other["calling_ae_title"] == HOSTILE[:16]
    texts = render_reports(report, ["html", "md", "junit", "json"], TEMPLATES)
    for fmt in ("html", "md"):
        assert "<img" not in texts[fmt] and "&lt;img src=x onerr" in texts[fmt], fmt
    assert "<img" not in texts["junit"]  # strangers are no test cases
    assert "or=alert(1)&gt;\\|\\*\\_" in texts["md"]
    assert '"standin": {' in texts["json"]
    lines = build_view(report)["console"]
    assert lines[1].startswith("GO-LIVE archive (ARCHIVE at 192.0.2.10:104, stand-in on staging): 3 caller(s), ")


@pytest.mark.parametrize("fmt", ["md", "html", "junit"])
def test_an_audit_without_stand_in_has_no_go_live_section(fmt):
    report = build_packed(_plans(), {}, "2025-01-02T03:04:05Z")
    text = render_reports(report, [fmt], TEMPLATES)[fmt]
    assert "Go-live" not in text and "go-live" not in text
