"""What a scheduled audit says about what is about to break or has changed: peer changes since the
baseline, TLS certificates expiring, the metrics file and the published trend (pure logic)."""
from __future__ import annotations

import copy
import json

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    RTT_DRIFT_FACTOR,
    build_packed,
    build_report,
    matrix_of,
    peer_changes,
)
from ansible_collections.dicom.network.plugins.plugin_utils.audit_metrics import label_value, render_metrics
from ansible_collections.dicom.network.plugins.plugin_utils.audit_publish import (
    TREND_PAIRS,
    index_view,
    load_history,
    run_entry,
    sparklines,
)
from ansible_collections.dicom.network.plugins.plugin_utils.audit_tls import (
    certificate_section,
    expiry_problems,
    expiry_state,
)
from tests.unit.plugins.plugin_utils.test_audit_matrix import module_result, plan, split

CERT = {"sha256": "AA:" * 31 + "AA", "not_after": "2027-01-01T00:00:00Z", "days_left": 20, "verified": True,
        "subject": "CN=pacs.example.org", "issuer": "CN=Hospital CA"}


def runs(answer):
    """One host echoing the archive and the worklist; ``answer(name)`` gives extra module result fields."""
    the_plan = plan("probe-a", ["ct1"], ["archive", "mwl"])
    call = the_plan["calls"][0]
    results = [module_result(spec, call["calling_ae_title"], **answer(spec["name"])) for spec in call["peers"]]
    return {"probe-a": {"plan": the_plan, "echo": {"results": [{"item": call, "results": results}]}}}


def report(answer=lambda name: {}, **options):
    plans, results = split(runs(answer))
    return build_report(plans, results, "2025-01-02T03:04:05Z", **options)


@pytest.mark.parametrize("was, now, expected", [
    ({"implementation_version": "OFFIS_DCMTK_366"}, {"implementation_version": "OFFIS_DCMTK_367"},
     ["implementation version OFFIS_DCMTK_366 -> OFFIS_DCMTK_367"]),
    ({"max_pdu": 16384}, {"max_pdu": 65536}, ["max PDU 16384 -> 65536"]),
    ({"tls_sha256": "AA:BB:CC:DD:EE:FF"}, {"tls_sha256": "11:22:33:44:55:66", "tls_not_after": "2027-01-01T00:00:00Z"},
     ["TLS certificate AA:BB:CC:DD... -> 11:22:33:44... (valid until 2027-01-01T00:00:00Z)"]),
    ({"rtt_avg": 2.0}, {"rtt_avg": 30.0}, ["RTT 2.0 ms -> 30.0 ms (15.0x)"]),
    # Three times slower but only 10 ms more: jitter on a fast link, not a change.
    ({"rtt_avg": 2.0}, {"rtt_avg": 12.0}, []),
    # 25 ms more but less than three times: a slow link that got a little slower.
    ({"rtt_avg": 20.0}, {"rtt_avg": 45.0}, []),
    # A fact one side does not know (an older baseline, a check that did not reach the peer) is no change.
    ({"implementation_version": None, "tls_sha256": None}, {"implementation_version": "X", "tls_sha256": "AB"}, []),
])
def test_peer_changes(was, now, expected):
    assert peer_changes(was, now) == expected
    assert RTT_DRIFT_FACTOR == 3.0


def test_changes_since_the_baseline_are_changed_pairs_and_an_older_baseline_shows_none():
    old = report()
    new = report(lambda name: {"peer": {"implementation_class_uid": "1.2.3", "implementation_version_name": "NEW_1",
                                        "max_pdu": 16384}} if name == "archive" else {})
    diff = report(lambda name: {"peer": {"implementation_class_uid": "1.2.3", "implementation_version_name": "NEW_1",
                                         "max_pdu": 16384}} if name == "archive" else {}, baseline=old)["baseline"]
    (pair,) = diff["changed"]
    assert (pair["peer"], pair["changes"]) == ("archive", ["implementation version OFFIS_DCMTK_367 -> NEW_1"])
    assert diff["counts"]["peer_changes"] == 1 and diff["counts"]["broke"] == 0
    # A baseline of a report written before implementation, certificate and RTT were compared.
    older = copy.deepcopy(old)
    for cell in older["cells"]:
        for key in ("peer_implementation_version", "peer_implementation_class_uid", "peer_max_pdu", "rtt_ms"):
            cell.pop(key)
    assert report(baseline=older)["baseline"]["counts"]["peer_changes"] == 0
    assert new["baseline"] is None


def test_a_certificate_and_an_rtt_change_read_from_a_packed_report_and_its_json():
    certificate = dict(CERT, sha256="BB:" * 31 + "BB")
    old = json.loads(json.dumps(build_packed(*split(runs(lambda name: {"tls_certificate": CERT})), "2025-01-01T00:00:00Z")))
    slower = {"min": 40.0, "avg": 40.0, "max": 40.0}
    new = report(lambda name: {"tls_certificate": certificate} if name == "archive" else {"rtt_ms": slower,
                                                                                          "tls_certificate": CERT},
                 baseline=old)
    changed = {pair["peer"]: pair["changes"] for pair in new["baseline"]["changed"]}
    assert changed == {"archive": ["TLS certificate AA:AA:AA:AA... -> BB:BB:BB:BB... (valid until 2027-01-01T00:00:00Z)"],
                       "mwl": ["RTT 1.5 ms -> 40.0 ms (26.7x)"]}


@pytest.mark.parametrize("days, warn, fail, state", [
    (None, 30, 7, "unknown"), (-1, 30, 7, "expired"), (0, 30, 7, "fail"), (7, 30, 7, "fail"), (8, 30, 7, "warn"),
    (30, 30, 7, "warn"), (31, 30, 7, "ok"), (3, None, None, "ok"), (3, 30, None, "warn"), (-5, None, None, "expired"),
])
def test_expiry_states(days, warn, fail, state):
    assert expiry_state(days, warn, fail) == state


def test_each_certificate_is_listed_once_per_peer_soonest_first_with_its_checks():
    expired = dict(CERT, sha256="CC", days_left=-3, not_after="2024-12-30T00:00:00Z")
    built = report(lambda name: {"tls_certificate": CERT if name == "archive" else expired})
    section = certificate_section(matrix_of(built), 30, 7)
    assert [(entry["peer"], entry["state"], entry["checks"]) for entry in section["certificates"]] == [
        ("mwl", "expired", 1), ("archive", "warn", 1)]
    assert section["counts"] == {"expired": 1, "fail": 0, "warn": 1, "ok": 0, "unknown": 0}
    assert [entry["peer"] for entry in expiry_problems(section)] == ["mwl"]
    assert expiry_problems(certificate_section(matrix_of(report()), 30, 7)) == []


def _families(text):
    families = {family.name: family for family in openmetrics_families(text)}
    assert {family.name for family in text_families(text)} >= set(families)
    return families


def test_metrics_parse_with_prometheus_parsers_and_escape_untrusted_labels():
    hostile = 'AE"\\\n{x="1"}'
    built = report(lambda name: {"tls_certificate": CERT, "ae_title": hostile} if name == "archive" else {})
    for cell in built["cells"]:
        if cell["peer"] == "archive":
            cell["called_ae_title"] = hostile
    text = render_metrics(built)
    assert text.endswith("# EOF\n")
    families = _families(text)
    ok = {sample.labels["called_ae_title"]: sample.value for sample in families["dicom_echo_audit_check_ok"].samples}
    assert ok[hostile] == 1.0
    days = families["dicom_echo_audit_check_tls_days_left"].samples
    assert [(sample.labels["peer"], sample.value) for sample in days] == [("archive", 20.0)]
    checks = {sample.labels["state"]: sample.value for sample in families["dicom_echo_audit_checks"].samples}
    assert checks == {"ok": 2, "failed": 0, "not_run": 0}
    assert label_value(hostile) == 'AE\\"\\\\\\n{x=\\"1\\"}'


def test_beyond_the_cell_limit_the_metrics_are_per_calling_ae():
    built = report(lambda name: {"tls_certificate": CERT})
    families = _families(render_metrics(built, cell_limit=1))
    assert "dicom_echo_audit_check_ok" not in families
    states = {sample.labels["state"]: sample.value for sample in families["dicom_echo_audit_calling_ae_checks"].samples}
    assert states == {"ok": 2, "failed": 0, "not_run": 0}
    (soonest,) = families["dicom_echo_audit_calling_ae_tls_days_left_min"].samples
    assert (soonest.labels["calling_ae_title"], soonest.value) == ("CT1", 20.0)


def test_the_published_history_keeps_round_trips_and_changes_and_draws_sparklines():
    first = run_entry(report(), ["json"])
    assert first["rtt"] == {"probe-a as CT1 -> ARCHIVE (archive)": 1.5, "probe-a as CT1 -> MWL (mwl)": 1.5}
    assert first["changes"] is None
    later = dict(run_entry(report(lambda name: {"rtt_ms": {"min": 9.0, "avg": 9.0, "max": 9.0}}), ["json"]),
                 stamp="20250103T000000Z")
    history = {"kind": "dicom.network.echo_audit publish history", "schema_version": 1, "runs": [first, later]}
    view = index_view(json.dumps(history))
    (archive, mwl) = sorted(view["sparklines"], key=lambda line: line["pair"], reverse=True)
    assert archive["latest"] == "9.0 ms" and archive["range"] == "1.5-9.0 ms"
    (points,) = archive["polylines"]
    assert len(points.split()) == 2
    # A history entry of someone else's writing is checked like the rest of it.
    broken = dict(first, rtt={"pair": "fast"})
    with pytest.raises(Exception, match="rtt must be null or an object"):
        load_history(json.dumps(dict(history, runs=[broken])))
    assert sparklines([]) == []


def test_no_round_trips_are_kept_for_more_pairs_than_the_index_can_show():
    built = report()
    built["summary"] = dict(built["summary"], total=TREND_PAIRS + 1)
    assert run_entry(built, ["json"])["rtt"] is None
