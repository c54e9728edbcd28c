"""Matrix, summary and baseline diff (plugins/plugin_utils/audit_matrix.py)."""
from __future__ import annotations

import copy
import gc
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import resolve_host
from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    DIFF_KINDS,
    NOT_RUN,
    NOT_RUN_REASONS,
    SCHEMA_VERSION,
    AuditMatrixError,
    build_packed,
    build_report,
    cells_of,
    clean_text,
    diff_cells,
    matrix_of,
    new_failures,
    pair_key,
    unpack_report,
)
from ansible_collections.dicom.network.plugins.module_utils.echo_outcome import OUTCOMES, expectation_met

REGISTRY = {
    "archive": {"ae_title": "ARCHIVE", "host": "192.0.2.10", "port": 104, "site": "Site A", "kind": "archive"},
    "mwl": {"ae_title": "MWL", "host": "192.0.2.20", "port": 107, "site": "Site A", "kind": "ris"},
    "router": {"ae_title": "ROUTER_B", "host": "198.51.100.30", "port": 104, "site": "Site B", "kind": "router"},
    "ct1": {"ae_title": "CT1", "host": "192.0.2.41", "port": 104, "site": "Site A", "kind": "modality"},
    "cr1": {"ae_title": "CR1", "host": "198.51.100.41", "port": 104, "site": "Site B", "kind": "modality"},
    "ws1": {"ae_title": "WS1", "host": "192.0.2.61", "port": 11112, "kind": "workstation",
            "description": "<script>alert(1)</script>"},
}


def plan(host, local, peers):
    return resolve_host(host, REGISTRY, local, {"dicom_peers": peers})


def module_result(spec, calling, outcome="success", ok=None, **extra):
    """What dicom.network.echo returns for one peer (the fields the matrix reads)."""
    result = {"name": spec["name"], "ae_title": spec["ae_title"], "host": spec["host"], "port": spec["port"],
              "calling_ae_title": calling, "expect": spec["expect"], "outcome": outcome,
              "ok": expectation_met(spec["expect"], outcome, "associate") if ok is None else ok, "phase": "release", "message": "echo %s" % outcome,
              "status": 0 if outcome == "success" else None, "reject": None,
              "rtt_ms": {"min": 1.0, "avg": 1.5, "max": 2.0} if outcome == "success" else None,
              "timings_ms": {"connect": 0.3, "total": 3.2},
              "peer": {"implementation_class_uid": "1.2.3", "implementation_version_name": "OFFIS_DCMTK_367",
                       "max_pdu": 16384},
              "transfer_syntax": "1.2.840.10008.1.2", "started_at": "2025-01-01T00:00:00+00:00"}
    result.update(extra)
    return result


def registered(the_plan, outcomes=None, **per_call):
    """The registered result of the role's looped echo task for ``the_plan``."""
    items = []
    for call in the_plan["calls"]:
        if not call["peers"]:
            continue
        override = per_call.get(call["calling"])
        if override is not None:
            items.append(dict(override, item=call))
            continue
        results = [module_result(spec, call["calling_ae_title"], (outcomes or {}).get(spec["name"], "success"))
                   for spec in call["peers"]]
        items.append({"item": call, "changed": False, "results": results, "summary": {}, "msg": "done"})
    return {"changed": False, "msg": "All items completed", "results": items}


def small_runs():
    """{host: {plan, echo}}: what the role gathers from hostvars (_echo_audit_plan, __echo_audit_echo)."""
    p1 = plan("probe-a", ["ct1"], ["archive", {"name": "mwl", "expect": "accept"}, "router"])
    p2 = plan("probe-b", ["cr1"], ["router", "archive"])
    p3 = plan("ws-1", ["ws1"], [{"name": "mwl", "expect": "reject"}, "archive"])
    return {
        "probe-a": {"plan": p1, "echo": registered(p1, {"mwl": "rejected"})},
        "probe-b": {"plan": p2, "echo": {"msg": "All items completed", "unreachable": True, "results": [
            {"item": p2["calls"][0], "unreachable": True, "msg": "Failed to connect to the host via ssh"}]}},
        "ws-1": {"plan": p3, "echo": registered(p3, {"mwl": "rejected"})},
    }


def split(runs):
    return ({host: run["plan"] if run else None for host, run in runs.items()},
            {host: run["echo"] for host, run in runs.items() if run})


def report_of(runs, **kwargs):
    plans, results = split(runs)
    return build_report(plans, results, "2025-01-02T03:04:05Z", **kwargs)


def cell(report, host, peer):
    (found,) = [c for c in report["cells"] if c["source_host"] == host and c["peer"] == peer]
    return found


def test_report_layout_and_summary():
    report = report_of(small_runs())
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["generated_at"] == "2025-01-02T03:04:05Z"
    assert len(report["cells"]) == 3 + 2 + 2
    assert report["summary"] == {"total": 7, "ok": 4, "failed": 1, "not_run": 2,
                                 "by_outcome": {"success": 3, "rejected": 2, "not_run": 2}, "source_hosts": 3}
    assert report["baseline"] is None
    assert report["sites"] == ["Site A", "Site B", ""]


def test_rows_and_columns_grouped_by_site_then_kind():
    report = report_of(small_runs())
    assert [(row["site"], row["calling_ae_title"]) for row in report["rows"]] == [
        ("Site A", "CT1"), ("Site B", "CR1"), ("", "WS1")]
    assert [column["name"] for column in report["columns"]] == ["archive", "mwl", "router"]
    assert report["rows"][2]["description"] == "<script>alert(1)</script>", "escaping is the renderers' job"


def test_a_calling_only_ae_is_a_row_without_host_and_port():
    # A workstation that never listens: a registry entry without host and port, only ever a row.
    registry = dict(REGISTRY, scu={"ae_title": "WS_SCU", "site": "Site B", "kind": "workstation"})
    the_plan = resolve_host("ws-scu", registry, ["scu"], {"dicom_peers": ["archive", {"name": "mwl", "expect": "reject"}]})
    assert the_plan["aes"]["scu"]["host"] is None and the_plan["aes"]["scu"]["port"] is None
    runs = dict(small_runs(), **{"ws-scu": {"plan": the_plan, "echo": registered(the_plan, {"mwl": "rejected"})}})
    plans, results = split(runs)
    report = build_report(plans, results, "2025-01-02T03:04:05Z")
    (row,) = [row for row in report["rows"] if row["source_host"] == "ws-scu"]
    assert (row["calling_ae_title"], row["ae_host"], row["ae_port"], row["site"]) == ("WS_SCU", "", None, "Site B")
    assert "WS_SCU" not in [column["ae_title"] for column in report["columns"]]
    assert cell(report, "ws-scu", "archive")["ok"] is True and cell(report, "ws-scu", "mwl")["ok"] is True
    assert report["summary"]["source_hosts"] == 4
    packed = build_packed(plans, results, "2025-01-02T03:04:05Z")
    assert unpack_report(json.loads(json.dumps(packed))) == json.loads(json.dumps(report))


def test_cells_follow_row_then_column_order():
    report = report_of(small_runs())
    rows = [row["id"] for row in report["rows"]]
    columns = [column["id"] for column in report["columns"]]
    order = [(rows.index(c["row"]), columns.index(c["column"])) for c in report["cells"]]
    assert order == sorted(order)


def test_cell_content_from_module_result():
    c = cell(report_of(small_runs()), "probe-a", "archive")
    assert c["outcome"] == "success" and c["ok"] is True and c["expect"] == "accept"
    assert c["calling_ae_title"] == "CT1" and c["called_ae_title"] == "ARCHIVE"
    assert c["rtt_ms"] == {"min": 1.0, "avg": 1.5, "max": 2.0}
    assert c["peer_implementation_version"] == "OFFIS_DCMTK_367"
    assert c["status"] == 0 and c["not_run_reason"] is None
    expected_reject = cell(report_of(small_runs()), "ws-1", "mwl")
    assert expected_reject["outcome"] == "rejected" and expected_reject["ok"] is True


def test_unreachable_host_keeps_its_row_with_not_run_cells():
    report = report_of(small_runs())
    cells = [c for c in report["cells"] if c["source_host"] == "probe-b"]
    assert len(cells) == 2
    for c in cells:
        assert c["outcome"] == NOT_RUN and c["ok"] is False and c["not_run_reason"] == "unreachable"
        assert c["message"] == "host unreachable: Failed to connect to the host via ssh"


def test_an_unreachable_probe_is_named_instead_of_the_source_it_echoes_for():
    runs = small_runs()
    p2 = runs["probe-b"]["plan"]
    runs["probe-b"]["echo"] = {"msg": "All items completed", "results": [
        {"item": p2["calls"][0], "unreachable": True, "echoed_from": "probe-z", "msg": "ssh: connection refused"}]}
    report = report_of(runs)
    cells = [c for c in report["cells"] if c["source_host"] == "probe-b"]
    assert cells and all(c["not_run_reason"] == "unreachable" for c in cells)
    assert all(c["message"] == "probe probe-z unreachable: ssh: connection refused" for c in cells)
    itself = small_runs()
    itself["probe-b"]["echo"]["results"][0]["echoed_from"] = "probe-b"
    assert all(c["message"].startswith("host unreachable: ") for c in report_of(itself)["cells"]
               if c["source_host"] == "probe-b")


@pytest.mark.parametrize("item, reason, message", [
    ({"failed": True, "msg": "missing pynetdicom"}, "task_failed", "echo task failed: missing pynetdicom"),
    ({"failed": False, "failed_when_result": False, "msg": "peers[0].tls.ca_file: file /x does not exist"},
     "task_failed", "echo task failed: peers[0].tls.ca_file: file /x does not exist"),
    ({"skipped": True, "skip_reason": "Conditional result was False"}, "skipped",
     "echo task skipped: Conditional result was False"),
    ({"changed": False}, "no_result", "the echo task returned no results"),
])
def test_failed_call_becomes_not_run_with_the_reason(item, reason, message):
    runs = small_runs()
    p1 = runs["probe-a"]["plan"]
    runs["probe-a"]["echo"] = registered(p1, ct1=item)
    for c in [c for c in report_of(runs)["cells"] if c["source_host"] == "probe-a"]:
        assert (c["outcome"], c["not_run_reason"], c["message"]) == (NOT_RUN, reason, message)


def test_host_that_never_ran_the_echo():
    runs = small_runs()
    runs["probe-a"]["echo"] = None
    cells = [c for c in report_of(runs)["cells"] if c["source_host"] == "probe-a"]
    assert {c["not_run_reason"] for c in cells} == {"no_result"}
    assert "did not run" in cells[0]["message"]
    plans, results = split(small_runs())
    del results["probe-a"]
    report = build_report(plans, results, "now")
    assert {c["outcome"] for c in report["cells"] if c["source_host"] == "probe-a"} == {NOT_RUN}


def test_peer_missing_from_module_answer_and_unplanned_answer():
    runs = small_runs()
    p1 = runs["probe-a"]["plan"]
    echo = registered(p1)
    answers = echo["results"][0]["results"]
    answers.pop(1)  # mwl: no answer
    answers.append(module_result({"name": "surprise", "ae_title": "SURPRISE", "host": "h", "port": 1,
                                  "expect": "accept"}, "CT1"))
    runs["probe-a"]["echo"] = echo
    report = report_of(runs)
    assert cell(report, "probe-a", "mwl")["not_run_reason"] == "no_result"
    assert cell(report, "probe-a", "surprise")["outcome"] == "success"
    assert "surprise" in [column["name"] for column in report["columns"]]


def test_missing_plan_is_an_error_naming_the_host():
    with pytest.raises(AuditMatrixError, match="host probe-z: no peer plan"):
        report_of({"probe-z": None})
    with pytest.raises(AuditMatrixError, match="plans must be a dictionary"):
        build_report(["probe-z"], {}, "now")
    with pytest.raises(AuditMatrixError, match="results must be a dictionary"):
        build_report({}, ["probe-z"], "now")


def test_untrusted_text_is_cleaned():
    assert clean_text("a\nb\x00c\u202ed\x1b[31m") == "a b\ufffdc\ufffdd\ufffd[31m"
    assert clean_text("x" * 600) == "x" * 499 + "\u2026"
    assert clean_text(None) is None
    runs = small_runs()
    p1 = runs["probe-a"]["plan"]
    echo = registered(p1)
    echo["results"][0]["results"][0]["peer"]["implementation_version_name"] = "<b>\x07EVIL</b>"
    echo["results"][0]["results"][0]["message"] = "line1\nline2"
    echo["results"][0]["results"][0]["rtt_ms"] = {"min": float("nan"), "avg": "1", "max": True}
    runs["probe-a"]["echo"] = echo
    c = cell(report_of(runs), "probe-a", "archive")
    assert c["peer_implementation_version"] == "<b>\ufffdEVIL</b>"
    assert c["message"] == "line1 line2"
    assert c["rtt_ms"] == {"min": None, "avg": None, "max": None}


def test_inline_peers_with_one_name_on_two_hosts_get_distinct_columns():
    inline_a = {"name": "vendor", "ae_title": "VENDOR", "host": "203.0.113.1", "port": 104}
    inline_b = dict(inline_a, host="203.0.113.2")
    p1 = plan("h1", ["ct1"], [inline_a])
    p2 = plan("h2", ["cr1"], [inline_b])
    report = report_of({"h1": {"plan": p1, "echo": registered(p1)}, "h2": {"plan": p2, "echo": registered(p2)}})
    ids = [column["id"] for column in report["columns"]]
    assert ids == ["vendor (VENDOR@203.0.113.1:104)", "vendor (VENDOR@203.0.113.2:104)"]
    assert len({c["column"] for c in report["cells"]}) == 2


def test_report_is_json_serializable_and_deterministic():
    first = json.dumps(report_of(small_runs()), sort_keys=True)
    assert first == json.dumps(report_of(small_runs()), sort_keys=True)


def test_baseline_diff_in_report():
    old = report_of(small_runs())
    runs = small_runs()
    p1 = runs["probe-a"]["plan"]
    runs["probe-a"]["echo"] = registered(p1, {"archive": "timeout", "mwl": "success"})
    p3 = runs["ws-1"]["plan"]
    runs["ws-1"]["echo"] = registered(p3, {"mwl": "aborted"})
    del runs["probe-b"]
    new = report_of(runs, baseline=json.dumps(old), baseline_source="reports/latest.json")
    base = new["baseline"]
    assert base["source"] == "reports/latest.json" and base["generated_at"] == "2025-01-02T03:04:05Z"
    assert [(p["source_host"], p["peer"]) for p in base["broke"]] == [("probe-a", "archive")]
    assert [(p["source_host"], p["peer"]) for p in base["fixed"]] == [("probe-a", "mwl")]
    disappeared = [(p["source_host"], p["peer"]) for p in base["disappeared"]]
    assert disappeared == [("probe-b", "archive"), ("probe-b", "router")]
    assert [(p["source_host"], p["peer"]) for p in base["changed"]] == [("ws-1", "mwl")]
    assert base["appeared"] == []
    assert base["counts"] == {"broke": 1, "fixed": 1, "appeared": 0, "disappeared": 2, "changed": 1, "new_failures": 1,
                              "peer_changes": 0}
    assert base["broke"][0]["before"] == {"outcome": "success", "ok": True, "expect": "accept", "message": "echo success"}
    assert base["broke"][0]["after"]["outcome"] == "timeout"
    scoped = report_of(runs, baseline=old, baseline_scope="run")["baseline"]
    assert scoped["disappeared"] == [], "run scope ignores hosts left out of this run"
    only = report_of(runs, baseline=old, baseline_scope="run", only_peers=["MWL"])["baseline"]
    assert only["broke"] == [] and [p["peer"] for p in only["fixed"]] == ["mwl"]


def test_diff_sides_carry_the_expectation():
    # Only the inventory changed: ws-1 -> mwl was expected to be rejected, now to be accepted; still rejected.
    old = report_of(small_runs())
    runs = small_runs()
    p3 = plan("ws-1", ["ws1"], [{"name": "mwl", "expect": "accept"}, "archive"])
    runs["ws-1"] = {"plan": p3, "echo": registered(p3, {"mwl": "rejected"})}
    base = report_of(runs, baseline=old)["baseline"]
    (pair,) = base["broke"]
    assert (pair["source_host"], pair["peer"]) == ("ws-1", "mwl")
    assert pair["before"] == {"outcome": "rejected", "ok": True, "expect": "reject", "message": "echo rejected"}
    assert pair["after"] == {"outcome": "rejected", "ok": False, "expect": "accept", "message": "echo rejected"}


def test_baseline_without_expect_in_its_cells_still_loads():
    # A hand-made or trimmed baseline: cells without expect give sides without an expectation.
    old = report_of(small_runs())
    for old_cell in old["cells"]:
        del old_cell["expect"]
    runs = small_runs()
    runs["probe-a"]["echo"] = registered(runs["probe-a"]["plan"], {"archive": "timeout", "mwl": "rejected"})
    (pair,) = report_of(runs, baseline=json.dumps(old))["baseline"]["broke"]
    assert pair["before"]["expect"] is None and pair["after"]["expect"] == "accept"


def test_new_failures_count_broke_and_appeared_pairs_that_are_not_ok():
    # The baseline knew probe-a only, all ok; now archive broke, and ws-1 (ok and not ok pairs) and the
    # unreachable probe-b (not run) are new.
    p1 = plan("probe-a", ["ct1"], ["archive", "router"])
    old = report_of({"probe-a": {"plan": p1, "echo": registered(p1)}})
    runs = small_runs()
    runs["probe-a"] = {"plan": p1, "echo": registered(p1, {"archive": "timeout"})}
    base = report_of(runs, baseline=old)["baseline"]
    assert [(p["source_host"], p["peer"]) for p in base["appeared"]] == [
        ("probe-b", "archive"), ("probe-b", "router"), ("ws-1", "archive"), ("ws-1", "mwl")]
    # broke 1 (probe-a archive) + appeared and not ok 2 (probe-b not run); ws-1's appeared pairs are ok.
    assert base["counts"] == {"broke": 1, "fixed": 0, "appeared": 4, "disappeared": 0, "changed": 0, "new_failures": 3,
                              "peer_changes": 0}
    assert list(base["counts"])[:5] == list(DIFF_KINDS), "the five counts stay as they were, new_failures after"


@pytest.mark.parametrize("baseline, fragment", [
    ("not json", "invalid JSON"),
    ([], "expected an object"),
    ({"cells": []}, "no schema_version"),
    ({"schema_version": SCHEMA_VERSION + 1, "cells": []}, "newer than this collection"),
    ({"schema_version": 1, "cells": {}}, "cells must be a list"),
    ({"schema_version": 1, "cells": [{"source_host": "h"}]}, "cells[0].calling_ae_title must be a string"),
    ({"schema_version": 1, "cells": [{"source_host": "h", "calling_ae_title": "A", "peer": "p", "outcome": "x",
                                      "ok": "yes"}]}, "cells[0].ok must be true or false"),
])
def test_bad_baseline_is_rejected_with_its_source(baseline, fragment):
    with pytest.raises(AuditMatrixError) as caught:
        report_of(small_runs(), baseline=baseline, baseline_source="old.json")
    assert str(caught.value).startswith("old.json: ") and fragment in str(caught.value)


def test_bad_scope():
    with pytest.raises(AuditMatrixError, match="baseline_scope must be one of all, run"):
        report_of(small_runs(), baseline_scope="some")


# ---------------------------------------------------------------------------- properties

_hosts = st.sampled_from(["h1", "h2", "h3"])
_callers = st.sampled_from(["CT1", "CR1"])
_peers = st.sampled_from(["archive", "mwl", "router", "printer"])
_outcomes = st.sampled_from(OUTCOMES + (NOT_RUN,))
_cell = st.builds(lambda host, calling, peer, outcome, ok: {
    "source_host": host, "calling_ae_title": calling, "peer": peer, "called_ae_title": peer.upper(),
    "outcome": outcome, "ok": ok, "message": "m"}, _hosts, _callers, _peers, _outcomes, st.booleans())


def _unique(cells):
    return list({pair_key(c): c for c in cells}.values())


_cells = st.lists(_cell, max_size=30).map(_unique)


@settings(max_examples=300, deadline=None)
@given(_cells)
def test_property_diff_with_itself_is_empty(cells):
    assert all(pairs == [] for pairs in diff_cells(cells, copy.deepcopy(cells)).values())


@settings(max_examples=300, deadline=None)
@given(_cells, _cells)
def test_property_diff_mirrors(a, b):
    forward, backward = diff_cells(a, b), diff_cells(b, a)

    def swapped(pairs):
        return [dict(p, before=p["after"], after=p["before"]) for p in pairs]

    def keys(pairs):
        return [(p["source_host"], p["calling_ae_title"], p["peer"]) for p in pairs]

    assert keys(forward["broke"]) == keys(backward["fixed"])
    assert keys(forward["fixed"]) == keys(backward["broke"])
    assert keys(forward["appeared"]) == keys(backward["disappeared"])
    assert keys(forward["disappeared"]) == keys(backward["appeared"])
    assert keys(forward["changed"]) == keys(backward["changed"])
    for kind, mirror in (("broke", "fixed"), ("fixed", "broke"), ("appeared", "disappeared"),
                         ("disappeared", "appeared"), ("changed", "changed")):
        assert [(p["before"], p["after"]) for p in swapped(forward[kind])] == \
            [(p["before"], p["after"]) for p in backward[mirror]]
    # Every pair of either side is in at most one list.
    listed = [key for kind in DIFF_KINDS for key in keys(forward[kind])]
    assert len(listed) == len(set(listed))


@settings(max_examples=300, deadline=None)
@given(_cells, _cells)
def test_property_new_failures_are_pairs_not_ok_now_that_were_ok_or_absent(a, b):
    old, new = {pair_key(c): c for c in a}, {pair_key(c): c for c in b}
    expected = sum(1 for key, now in new.items() if not now["ok"] and (key not in old or old[key]["ok"]))
    assert new_failures(diff_cells(a, b)) == expected


_plans = st.lists(
    st.tuples(st.sampled_from(["ct1", "cr1", "ws1"]),
              st.lists(st.sampled_from(["archive", "mwl", "router"]), unique=True, max_size=3),
              st.sampled_from(["ran", "unreachable", "failed", "missing"])),
    min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(_plans, st.lists(_outcomes.filter(lambda o: o != NOT_RUN), min_size=3, max_size=3))
def test_property_every_planned_check_is_exactly_one_cell(hosts, outcomes):
    runs = {}
    for index, (local, peers, fate) in enumerate(hosts):
        the_plan = plan("host%d" % index, [local], peers)
        if fate == "ran":
            echo = registered(the_plan, dict(zip(["archive", "mwl", "router"], outcomes)))
        elif fate == "unreachable":
            echo = {"unreachable": True, "msg": "down", "results": [
                {"item": call, "unreachable": True, "msg": "down"} for call in the_plan["calls"]]}
        elif fate == "failed":
            echo = registered(the_plan, **{call["calling"]: {"failed": True, "msg": "boom"}
                                           for call in the_plan["calls"]})
        else:
            echo = None
        runs["host%d" % index] = {"plan": the_plan, "echo": echo}
    report = report_of(runs)
    planned = sorted((host, call["calling_ae_title"], peer["name"]) for host, run in runs.items()
                     for call in run["plan"]["calls"] for peer in call["peers"])
    cells = sorted(pair_key(c) for c in report["cells"])
    assert cells == planned
    summary = report["summary"]
    assert summary["total"] == len(planned) == summary["ok"] + summary["failed"] + summary["not_run"]
    assert sum(summary["by_outcome"].values()) == summary["total"]
    for c in report["cells"]:
        assert (c["outcome"] == NOT_RUN) == (c["not_run_reason"] is not None)
        assert c["not_run_reason"] in NOT_RUN_REASONS + (None,)
        assert c["outcome"] != NOT_RUN or c["ok"] is False


# ---------------------------------------------------------------------------- the packed form

def test_packed_form_stands_for_the_report():
    plans, results = split(small_runs())
    report = build_report(plans, results, "2025-01-02T03:04:05Z")
    packed = build_packed(plans, results, "2025-01-02T03:04:05Z")
    assert "cells" not in packed and packed["packing"] == 1
    assert {key: packed[key] for key in report if key != "cells"} == {key: report[key] for key in report if key != "cells"}
    assert unpack_report(packed) == report
    assert list(unpack_report(packed)) == list(report), "keys in the report's order"
    # As the role keeps it: JSON text, parsed again in another task.
    assert unpack_report(json.loads(json.dumps(packed))) == json.loads(json.dumps(report))
    assert list(cells_of(packed)) == report["cells"] == list(cells_of(report))
    # Each distinct answer once: the three unreachable cells and the successes share variants.
    assert len(packed["variants"]) < len(packed["packed_cells"]) == 7
    # Packing the full report again finds the same answers.
    assert sorted(map(repr, matrix_of(report).variants)) == sorted(map(repr, packed["variants"]))


def test_answers_that_only_look_alike_keep_their_own_values():
    # 1 == 1.0 == True in Python and they hash alike; cleaned they differ (1, None; "1", "True").
    the_plan = plan("probe-a", ["ct1"], ["archive", "mwl", "router"])
    echo = registered(the_plan)
    first, second, third = echo["results"][0]["results"]
    first.update(status=1, message=1)
    second.update(status=True, message=True)
    third.update(status=1.0, message=1.0)
    for result in (first, second, third):
        result["peer"]["max_pdu"] = result["status"]
    report = report_of({"probe-a": {"plan": the_plan, "echo": echo}})
    got = {c["peer"]: (c["status"], c["message"], c["peer_max_pdu"]) for c in report["cells"]}
    assert got == {"archive": (1, "1", 1), "mwl": (None, "True", None), "router": (None, "1.0", None)}


def test_unplanned_answers_with_ports_that_only_look_alike_are_two_columns():
    runs = {}
    for host, local, port in (("probe-a", "ct1", 104), ("probe-b", "cr1", 104.0)):
        the_plan = plan(host, [local], ["archive"])
        echo = registered(the_plan)
        echo["results"][0]["results"].append(module_result(
            {"name": "extra", "ae_title": "EXTRA", "host": "h", "port": port, "expect": "accept"},
            the_plan["calls"][0]["calling_ae_title"]))
        runs[host] = {"plan": the_plan, "echo": echo}
    report = report_of(runs)
    assert sorted((c["name"], c["port"] or 0) for c in report["columns"]) == [("archive", 104), ("extra", 0), ("extra", 104)]
    assert {c["source_host"]: c["peer_port"] for c in report["cells"] if c["peer"] == "extra"} == \
        {"probe-a": 104, "probe-b": None}


def test_numbers_are_rounded_once_and_missing_keys_stay_missing():
    the_plan = plan("probe-a", ["ct1"], ["archive", "mwl", "router"])
    echo = registered(the_plan)
    first, second, third = echo["results"][0]["results"]
    first["rtt_ms"] = {"min": -0.0, "avg": 1.23456, "max": 10 ** 400}
    second["rtt_ms"] = {"min": 0.0, "avg": 1.23456, "max": float("inf")}
    first["timings_ms"] = {"connect": 0.3}
    second["timings_ms"] = {}
    third["rtt_ms"] = {"min": True, "avg": 2, "max": "3"}
    cells = {c["peer"]: c for c in report_of({"probe-a": {"plan": the_plan, "echo": echo}})["cells"]}
    assert cells["archive"]["rtt_ms"] == {"min": 0.0, "avg": 1.235, "max": None}
    assert math.copysign(1, cells["archive"]["rtt_ms"]["min"]) == -1, "-0.0 is not 0.0's memo entry"
    assert math.copysign(1, cells["mwl"]["rtt_ms"]["min"]) == 1
    assert cells["mwl"]["rtt_ms"] == {"min": 0.0, "avg": 1.235, "max": None}
    assert cells["archive"]["timings_ms"] == {"connect": 0.3}
    assert cells["mwl"]["timings_ms"] is None
    assert cells["router"]["rtt_ms"] == {"min": None, "avg": 2.0, "max": None}


def test_garbage_collection_is_back_on_after_a_build_even_a_failed_one():
    assert gc.isenabled()
    report_of(small_runs())
    assert gc.isenabled()
    with pytest.raises(AuditMatrixError):
        report_of({"probe-z": None})
    assert gc.isenabled()
    gc.disable()
    try:
        report_of(small_runs())
        assert not gc.isenabled(), "a caller's choice is kept"
    finally:
        gc.enable()


def test_a_packed_report_is_a_baseline_too():
    plans, results = split(small_runs())
    packed = build_packed(plans, results, "2025-01-02T03:04:05Z")
    from_packed = report_of(small_runs(), baseline=json.dumps(packed))["baseline"]
    from_full = report_of(small_runs(), baseline=report_of(small_runs()))["baseline"]
    assert from_packed == from_full and from_packed["counts"]["broke"] == 0
    with pytest.raises(AuditMatrixError, match="old.json: not a packed report"):
        report_of(small_runs(), baseline=dict(packed, packed_cells=[[9, 9, 9, None, None, None]]),
                  baseline_source="old.json")


def test_one_echo_round_trip_is_packed_as_one_number():
    the_plan = plan("probe-a", ["ct1"], ["archive", "mwl", "router"])
    echo = registered(the_plan)
    first, second, third = echo["results"][0]["results"]
    first["rtt_ms"] = {"min": 4.39, "avg": 4.39, "max": 4.39}
    second["rtt_ms"] = {"min": -0.0, "avg": 0.0, "max": 0.0}
    third["rtt_ms"] = {"min": 4.39, "avg": 4.39}
    plans, results = {"probe-a": the_plan}, {"probe-a": echo}
    packed = build_packed(plans, results, "now")
    assert [cell[3] for cell in packed["packed_cells"]] == [4.39, [-0.0, 0.0, 0.0], [4.39, 4.39, False]]
    cells = {c["peer"]: c["rtt_ms"] for c in unpack_report(json.loads(json.dumps(packed)))["cells"]}
    assert cells == {"archive": {"min": 4.39, "avg": 4.39, "max": 4.39}, "mwl": {"min": -0.0, "avg": 0.0, "max": 0.0},
                     "router": {"min": 4.39, "avg": 4.39}}
    assert math.copysign(1, cells["mwl"]["min"]) == -1
    assert unpack_report(packed) == build_report(plans, results, "now")


# ---------------------------------------------------------------------------------------------- services


def service(name, accepted=True, required=True, result=None, uid=None):
    """One entry of a module result's services."""
    return {"sop_class": name, "uid": uid or "1.2.840.10008.5.1.4.1.1.%d" % (len(name) % 9 + 1), "required": required,
            "accepted": accepted, "transfer_syntax": "1.2.840.10008.1.2.1" if accepted else None,
            "result": result or ("acceptance" if accepted else "abstract-syntax-not-supported")}


def services_runs(archive_services):
    """Two hosts whose route to the archive needs services; the archive answers ``archive_services``."""
    runs = {}
    for host, local in (("probe-a", "ct1"), ("probe-b", "cr1")):
        # The module names a service by keyword, or by UID where it has none (a hostile name is the peer's).
        needed = [s["sop_class"] if s["sop_class"].isalnum() else s["uid"] for s in archive_services if s["required"]]
        the_plan = plan(host, [local], [{"name": "archive", "services": needed}, "mwl"])
        call = the_plan["calls"][0]
        refused = [s for s in archive_services if s["required"] and not s["accepted"] and s["result"]]
        results = [module_result(spec, call["calling_ae_title"], "service_rejected" if refused and
                                 spec["name"] == "archive" else "success",
                                 services=copy.deepcopy(archive_services) if spec["name"] == "archive" else [])
                   for spec in call["peers"]]
        runs[host] = {"plan": the_plan, "echo": {"results": [{"item": call, "results": results}]}}
    return runs


def test_cells_carry_their_services_and_a_route_answering_alike_from_every_host_is_one_variant():
    answered = [service("CTImageStorage"), service("EnhancedCTImageStorage", accepted=False),
                service("MRImageStorage", required=False)]
    plans, results = split(services_runs(answered))
    assert plans["probe-a"]["calls"][0]["peers"][0]["services"] == ["CTImageStorage", "EnhancedCTImageStorage"]
    packed = build_packed(plans, results, "2025-01-02T03:04:05Z")
    report = unpack_report(packed)
    archive = [c for c in report["cells"] if c["peer"] == "archive"]
    assert [c["services"] for c in archive] == [answered, answered]
    assert [c["outcome"] for c in archive] == ["service_rejected"] * 2 and not any(c["ok"] for c in archive)
    assert all(c["services"] == [] for c in report["cells"] if c["peer"] == "mwl")
    # Both hosts' archive cells share one variant: the services are cleaned and stored once.
    assert len({packed_cell[2] for packed_cell in packed["packed_cells"]}) == 2
    # The full form packs back to the same cells.
    assert list(matrix_of(report).dicts()) == report["cells"]


def test_a_service_accepted_in_the_baseline_and_refused_now_is_a_regression_named_by_its_service():
    before = [service("CTImageStorage"), service("EnhancedCTImageStorage", accepted=False)]
    after = [service("CTImageStorage", accepted=False), service("EnhancedCTImageStorage", accepted=False)]
    old = report_of(services_runs(before))
    new = report_of(services_runs(after), baseline=old)
    baseline = new["baseline"]
    # Not ok on both sides, same outcome: only the service says that something broke.
    assert [(pair["source_host"], pair["peer"], pair["services_broke"]) for pair in baseline["broke"]] == [
        ("probe-a", "archive", ["CTImageStorage"]), ("probe-b", "archive", ["CTImageStorage"])]
    assert baseline["counts"]["new_failures"] == 2
    back = report_of(services_runs(before), baseline=new)["baseline"]
    assert [pair["services_fixed"] for pair in back["fixed"]] == [["CTImageStorage"]] * 2
    assert back["broke"] == []
    # Discovered services and services never negotiated are no regression.
    quiet = [service("CTImageStorage"), service("EnhancedCTImageStorage", accepted=False, result=None)]
    assert report_of(services_runs(quiet), baseline=report_of(services_runs(
        before + [service("MRImageStorage", required=False)])))["baseline"]["counts"]["broke"] == 0


def test_a_baseline_written_before_services_shows_no_service_change():
    before = [service("CTImageStorage"), service("EnhancedCTImageStorage", accepted=False)]
    old = report_of(services_runs(before))
    for cell in old["cells"]:
        del cell["services"]
    after = [service("CTImageStorage", accepted=False), service("EnhancedCTImageStorage", accepted=False)]
    assert report_of(services_runs(after), baseline=old)["baseline"]["counts"] == dict.fromkeys(
        DIFF_KINDS + ("new_failures", "peer_changes"), 0)
    # A packed report of that time: variants without their services.
    packed = build_packed(*split(services_runs(before)), "2025-01-02T03:04:05Z")
    packed["variants"] = [list(variant[:14]) for variant in packed["variants"]]
    assert all(cell["services"] == [] for cell in cells_of(packed))
    assert report_of(services_runs(after), baseline=json.dumps(packed))["baseline"]["counts"]["broke"] == 0
