"""Views, exports and escapers of the echo audit reports (plugins/module_utils/audit_report.py)."""
from __future__ import annotations

import csv
import io
import json
import re
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dicom.network.plugins.module_utils.audit_inventory import resolve_host
from ansible_collections.dicom.network.plugins.module_utils.audit_matrix import (
    NOT_RUN,
    OUTCOME_ORDER,
    AuditMatrixError,
)
from ansible_collections.dicom.network.plugins.module_utils.audit_report import (
    CSV_HEADER,
    SYMBOLS,
    build_view,
    csv_field,
    csv_row,
    export,
    json_script,
    markdown_escape,
)
from tests.unit.plugins.module_utils.test_audit_matrix import registered, report_of, small_runs


def test_every_outcome_has_its_own_symbol():
    assert set(SYMBOLS) == set(OUTCOME_ORDER)
    assert len(set(SYMBOLS.values())) == len(SYMBOLS)


def test_markdown_escape():
    assert markdown_escape("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert markdown_escape("A|B\nC") == "A\\|B C"
    assert markdown_escape("*x* _y_ `z` [l](u) ~s~ #h \\") == "\\*x\\* \\_y\\_ \\`z\\` \\[l\\](u) \\~s\\~ \\#h \\\\"
    assert markdown_escape("&amp;") == "&amp;amp;"
    assert markdown_escape(None) == ""


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_property_markdown_escape_leaves_no_markup(text):
    escaped = markdown_escape(text)
    assert "<" not in escaped and ">" not in escaped and "\n" not in escaped
    assert re.search(r"(?<!\\)\|", escaped.replace("\\\\", "")) is None


def test_csv_field_neutralizes_formulas():
    assert csv_field("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    for start in "+-@\t%|":
        assert csv_field(start + "1").startswith("'")
    assert csv_field(-1) == "-1" and csv_field(1.5) == "1.5" and csv_field(True) == "true"
    assert csv_field(None) == "" and csv_field("PACS") == "PACS"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(), st.text()), max_size=6))
def test_property_csv_row_round_trips(values):
    parsed = list(csv.reader(io.StringIO(csv_row(values), newline="")))
    assert parsed == ([[csv_field(value) for value in values]] if values else [])


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text()),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=20))
def test_property_json_script_is_inert_and_round_trips(value):
    text = json_script(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == value


def test_json_script_cannot_close_the_element():
    assert json_script({"x": "</script><script>alert(1)</script>"}) == \
        '{"x":"\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"}'


def test_summary_view_and_console():
    view = build_view(report_of(small_runs()), "summary", console_limit=1)
    assert view["summary"]["total"] == 7 and view["baseline_counts"] is None
    assert view["console"][0] == ("DICOM echo audit: 7 checks, 4 ok, 1 failed, 2 not run "
                                  "(success 3, rejected 2, not_run 2)")
    assert view["console"][1] == "PARTIAL report: 2 check(s) did not run"
    assert view["partial_reasons"] == ["2 check(s) did not run"]
    assert view["console"][2].startswith("NOT OK probe-a as CT1 -> MWL (mwl): rejected, expected accept")
    assert view["console"][-1] == "... 2 more line(s) in the reports"
    assert "legend" not in view


def test_views_accept_the_report_as_json_text():
    report = report_of(small_runs())
    assert build_view(json.dumps(report), "summary") == build_view(report, "summary")


def test_html_view_data():
    view = build_view(report_of(small_runs()), "html", failures_limit=2)
    assert view["failures_total"] == 3 and len(view["failures"]) == 2 and view["failures_hidden"] == 1
    assert view["legend"][0]["outcome"] == "success" and view["sites"] == ["Site A", "Site B", "(no site)"]
    assert {entry["outcome"]: entry["count"] for entry in view["legend"]}[NOT_RUN] == 2
    text = view["data_json"]
    assert "<" not in text and ">" not in text
    data = json.loads(text)
    assert len(data["cells"]) == len(data["rows"]) == 3
    entry = data["cells"][0][1]  # CT1 -> mwl: rejected, expected accept
    assert entry[0] == 1 and data["outcomes"][entry[1]] == "rejected" and entry[2] == 0
    assert data["symbols"][entry[1]] == SYMBOLS["rejected"]
    assert data["strings"][entry[4]] == "echo rejected"
    assert data["failing_columns"] == [0, 1, 2] and data["failing_rows"] == [0, 1]
    assert data["rows"][2][4] == "<script>alert(1)</script>", "data stays intact, escaped only for the script element"


def test_markdown_view_matrix_only_when_it_fits():
    view = build_view(report_of(small_runs()), "md")
    matrix = view["matrix"]
    assert matrix["columns"] == ["ARCHIVE", "MWL", "ROUTER_B"]
    assert [group["label"] for group in matrix["groups"]] == ["Site A", "Site B", "(no site)"]
    assert matrix["groups"][0]["rows"][0]["cells"] == [SYMBOLS["success"], SYMBOLS["rejected"], SYMBOLS["success"]]
    assert matrix["groups"][2]["rows"][0]["cells"] == [SYMBOLS["success"], SYMBOLS["rejected"], ""]
    assert build_view(report_of(small_runs()), "md", markdown_max_columns=2)["matrix"] is None


def test_columns_with_one_ae_title_are_labelled_apart():
    registry = {"a": {"ae_title": "ARCH", "host": "h", "port": 104}, "b": {"ae_title": "ARCH", "host": "h", "port": 2762},
                "c": {"ae_title": "CALLER", "host": "x", "port": 1}}
    the_plan = resolve_host("h1", registry, ["c"], {"dicom_peers": ["a", "b"]})
    report = report_of({"h1": {"plan": the_plan, "echo": registered(the_plan)}})
    assert build_view(report, "md")["matrix"]["columns"] == ["ARCH (a)", "ARCH (b)"]
    assert [column[0] for column in json.loads(build_view(report, "html")["data_json"])["columns"]] == \
        ["ARCH (a)", "ARCH (b)"]


def test_baseline_view_lines():
    old = report_of(small_runs())
    runs = small_runs()
    runs["probe-a"]["echo"] = registered(runs["probe-a"]["plan"], {"archive": "timeout", "mwl": "rejected"})
    report = report_of(runs, baseline=old, baseline_source="old.json")
    view = build_view(report, "md", failures_limit=1)
    (broke,) = [group for group in view["baseline"]["kinds"] if group["kind"] == "broke"]
    assert broke["lines"] == ["probe-a as CT1 -> ARCHIVE (archive): success => timeout (not ok)"]
    assert [group["kind"] for group in view["baseline"]["kinds"]] == ["broke"]
    console = build_view(report, "summary")["console"]
    assert console[1].startswith("against baseline old.json (2025-01-02T03:04:05Z): 1 broke, 0 fixed")
    assert console[2] == "PARTIAL report: 2 check(s) did not run"
    assert console[3].startswith("REGRESSION probe-a as CT1 -> ARCHIVE")


def test_json_export_is_the_report_one_cell_per_line():
    report = report_of(small_runs())
    text = export(report, "json")
    assert json.loads(text) == json.loads(json.dumps(report))
    cell_lines = [line for line in text.splitlines() if line.startswith('  {"address"')]
    assert len(cell_lines) == len(report["cells"])
    empty = report_of({})
    assert json.loads(export(empty, "json"))["cells"] == []


def test_csv_export():
    text = export(report_of(small_runs()), "csv")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(CSV_HEADER) and len(rows) == 8
    assert text.endswith("\r\n") and not text.endswith("\r\n\r\n")


def test_junit_export_is_valid_xml():
    root = ElementTree.fromstring(export(report_of(small_runs()), "junit").encode("utf-8"))
    assert root.tag == "testsuites" and root.get("tests") == "7"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert suites["probe-b as CR1"].get("errors") == "2" and suites["probe-a as CT1"].get("failures") == "1"
    assert len(root.findall(".//testcase")) == 7
    (failure,) = root.findall(".//failure")
    assert failure.get("type") == "rejected" and "expected accept" in failure.get("message")


def test_bad_input():
    with pytest.raises(AuditMatrixError, match="view must be one of summary, html, md"):
        build_view(report_of(small_runs()), "pdf")
    with pytest.raises(AuditMatrixError, match="format must be one of json, csv, junit"):
        export(report_of(small_runs()), "pdf")
    with pytest.raises(AuditMatrixError, match="not a report of dicom.network.echo_matrix"):
        build_view({"rows": []}, "html")
    with pytest.raises(AuditMatrixError, match="invalid JSON"):
        export("{", "csv")
