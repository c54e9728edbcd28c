"""Reports rebuilt from the echo journal, partial runs and delegated rows (audit_matrix.py)."""
from __future__ import annotations

import json

import pytest

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    AuditMatrixError,
    build_report,
    partial_reasons,
    results_from_journal,
)
from tests.unit.plugins.plugin_utils.test_audit_matrix import plan, registered, report_of, small_runs


def journal_of(host, echo, echoed_from=None):
    """The entries the echo action plugin writes for each loop item of ``echo``."""
    return [json.dumps({"schema": 1, "host": host, "echoed_from": echoed_from or host, "item": item["item"],
                        "result": {key: value for key, value in item.items() if key != "item"}})
            for item in echo["results"]]


def test_an_interrupted_run_keeps_every_cell_and_the_finished_hosts_results():
    runs = small_runs()
    plans = {host: run["plan"] for host, run in runs.items()}
    # Only ws-1 came back before the play was stopped.
    journal = journal_of("ws-1", runs["ws-1"]["echo"])
    report = build_report(plans, results_from_journal(journal), "2025-01-02T03:04:05Z",
                          interrupted="stopped by Ctrl-C")
    complete = report_of(small_runs())
    assert [(c["source_host"], c["peer"]) for c in report["cells"]] == \
        [(c["source_host"], c["peer"]) for c in complete["cells"]]
    for cell in report["cells"]:
        if cell["source_host"] == "ws-1":
            assert cell["outcome"] != "not_run"
        else:
            assert (cell["outcome"], cell["not_run_reason"]) == ("not_run", "interrupted")
            assert cell["message"] == "no result: stopped by Ctrl-C"
    assert report["complete"] is False
    assert report["partial_reasons"][0] == "interrupted: stopped by Ctrl-C"


def test_a_host_interrupted_between_two_calls_keeps_the_finished_call():
    the_plan = plan("probe-a", ["ct1", "cr1"], ["archive", "mwl"])
    assert len(the_plan["calls"]) == 2
    echo = registered(the_plan)
    first_call_only = journal_of("probe-a", echo)[:1]
    report = build_report({"probe-a": the_plan}, results_from_journal(first_call_only), "2025-01-02T03:04:05Z",
                          interrupted="x")
    by_calling = {}
    for cell in report["cells"]:
        by_calling.setdefault(cell["calling_ae_title"], set()).add(cell["outcome"])
    first = echo["results"][0]["item"]["calling_ae_title"]
    second = echo["results"][1]["item"]["calling_ae_title"]
    assert by_calling[first] == {"success"}
    assert by_calling[second] == {"not_run"}


def test_complete_runs_and_the_reasons_a_run_is_partial():
    clean = small_runs()
    clean["probe-b"]["echo"] = registered(clean["probe-b"]["plan"])
    assert report_of(clean)["complete"] is True and report_of(clean)["partial_reasons"] == []
    assert report_of(small_runs())["partial_reasons"] == ["2 check(s) did not run"]
    limited = report_of(clean, limit="probe-a,ws-1", only_peers=["mwl"])
    assert limited["complete"] is False
    assert limited["partial_reasons"] == ["hosts limited to probe-a,ws-1", "peers limited to mwl"]
    assert limited["scope"]["limit"] == "probe-a,ws-1"
    assert partial_reasons({"not_run": 0}) == []


def test_a_delegated_row_says_where_the_echo_came_from():
    runs = small_runs()
    echo = registered(runs["ws-1"]["plan"])
    for item in echo["results"]:
        item["echoed_from"] = "probe-7"
        for result in item["results"]:
            result["source_address"] = "192.0.2.77"
    own = registered(runs["probe-a"]["plan"])
    for item in own["results"]:
        item["echoed_from"] = "probe-a"
    report = build_report({"ws-1": runs["ws-1"]["plan"], "probe-a": runs["probe-a"]["plan"]},
                          {"ws-1": echo, "probe-a": own}, "2025-01-02T03:04:05Z")
    rows = {row["source_host"]: row for row in report["rows"]}
    assert rows["ws-1"]["echoed_from"] == "probe-7"
    # Echoing from itself is the normal case, not a probe.
    assert rows["probe-a"]["echoed_from"] is None
    assert {c["source_address"] for c in report["cells"] if c["source_host"] == "ws-1"} == {"192.0.2.77"}


@pytest.mark.parametrize("journal, message", [
    ("not a list", "expected a list of entries"),
    (["{not json"], "journal entry 0: invalid JSON"),
    ([json.dumps({"host": "a", "result": {}}), json.dumps({"result": {}})], "journal entry 1: not an entry"),
    ([json.dumps({"host": "a", "result": []})], "journal entry 0: not an entry"),
])
def test_unreadable_journal_entries_are_named_not_skipped(journal, message):
    with pytest.raises(AuditMatrixError, match=message):
        results_from_journal(journal)


def test_a_host_whose_setup_failed_keeps_its_rows_with_the_reason():
    runs = small_runs()
    plans = {host: run["plan"] for host, run in runs.items()}
    results = {host: run["echo"] for host, run in runs.items()}
    results["ws-1"] = {"skipped": True, "skip_reason": "Conditional result was False"}
    report = build_report(plans, results, "2025-01-02T03:04:05Z",
                          setup_failures={"ws-1": "pynetdicom virtualenv not ready: Python 3.7 is too old",
                                          "probe-a": None})
    for cell in report["cells"]:
        if cell["source_host"] == "ws-1":
            assert (cell["outcome"], cell["not_run_reason"]) == ("not_run", "setup_failed")
            assert cell["message"] == "pynetdicom virtualenv not ready: Python 3.7 is too old"
        elif cell["source_host"] == "probe-a":
            assert cell["outcome"] != "not_run"
