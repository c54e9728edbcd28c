"""The echo audit's reports in every format, and the console summary (plugins/plugin_utils/audit_report.py).

Rendered with the role's own templates by plain Jinja2, no Ansible. Inventory strings and peer-sent
strings carry HTML, Markdown, CSV-formula and XML-breaking payloads that must come out escaped or
neutralised in each format (the assertions of tests/system/test_audit_render.py, on the new code).
"""
from __future__ import annotations

import base64
import copy
import csv
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import resolve_host
from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import (
    DIFF_KINDS,
    NOT_RUN,
    OUTCOME_ORDER,
    AuditMatrixError,
    build_packed,
    build_report,
)
from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import (
    CSV_HEADER,
    FORMATS,
    HTML_BLOCK_ROWS,
    SECTIONS,
    SYMBOLS,
    TEMPLATES,
    _csv_fields,
    build_view,
    csv_field,
    markdown_escape,
    render_reports,
)
from tests.unit.plugins.plugin_utils.test_audit_matrix import (
    module_result,
    plan,
    registered,
    report_of,
    service,
    services_runs,
    small_runs,
    split,
)

TEMPLATES_DIR = str(Path(__file__).resolve().parents[4] / "roles" / "echo_audit" / "templates")


def render(report, *formats, **options):
    texts = render_reports(report, list(formats or FORMATS), TEMPLATES_DIR, **options)
    return texts if not formats or len(formats) > 1 else texts[formats[0]]


# ---------------------------------------------------------------------------------------------- escapers


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
@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(), st.text()), min_size=1, max_size=6),
       st.lists(st.text(), min_size=1, max_size=3))
def test_property_csv_parts_join_into_the_record_the_writer_writes(values, more):
    # A record is joined from parts written apart (a row's, a column's, a variant's fields).
    parsed = list(csv.reader(io.StringIO(_csv_fields(values) + "," + _csv_fields(more) + "\r\n", newline="")))
    assert parsed == [[csv_field(value) for value in values + more]]


# ---------------------------------------------------------------------------------------------- console


def test_summary_view_and_console():
    view = build_view(report_of(small_runs()), "summary", console_limit=1)
    assert view["summary"]["total"] == 7 and view["baseline_counts"] is None
    assert view["console"][0] == ("DICOM echo audit: 7 checks, 4 ok, 1 failed, 2 not run "
                                  "(success 3, rejected 2, not_run 2)")
    assert view["console"][1] == "PARTIAL report: 2 check(s) did not run"
    assert view["partial_reasons"] == ["2 check(s) did not run"]
    assert view["console"][2].startswith("NOT OK probe-a as CT1 -> MWL (mwl): rejected, expected accept")
    # The two checks that did not run for one reason are one line.
    assert view["console"][-1] == "... 1 more line(s) in the reports"
    whole = build_view(report_of(small_runs()), "summary", console_limit=20)["console"]
    not_run = [line for line in whole if line.startswith("NOT RUN ")]
    assert len(not_run) == 1 and " -> 2 peers (" in not_run[0], whole
    assert sorted(view) == ["baseline_counts", "console", "generated_at", "only_peers", "partial_reasons",
                            "source_hosts_text", "started_at", "summary", "title"]


def test_console_limit_is_a_whole_number_from_zero():
    report = report_of(small_runs())
    assert build_view(report, "summary", console_limit="0")["console"][-1] == "... 2 more line(s) in the reports"
    for bad in (-1, "-1", "many", 2.5, True, None):
        with pytest.raises(AuditMatrixError, match="^console_limit must be a whole number >= 0, got "):
            build_view(report, "summary", console_limit=bad)
    with pytest.raises(AuditMatrixError, match="view must be summary"):
        build_view(report, "html")


def test_views_accept_the_report_as_json_text():
    report = report_of(small_runs())
    assert build_view(json.dumps(report), "summary") == build_view(report, "summary")
    assert render(json.dumps(report)) == render(report)


def test_every_source_host_with_a_row_is_counted_also_one_without_checks():
    runs = small_runs()
    assert build_view(report_of(runs), "summary")["source_hosts_text"] == "3 source host(s)"
    lonely = plan("lonely", ["ws1"], [])
    runs["lonely"] = {"plan": lonely, "echo": registered(lonely)}
    report = report_of(runs)
    assert "lonely" in report["scope"]["source_hosts"] and report["summary"]["source_hosts"] == 3
    assert build_view(report, "summary")["source_hosts_text"] == "4 source host(s), 1 of them with no check"
    texts = render(report, "html", "md")
    assert "from 4 source host(s), 1 of them with no check." in texts["html"]
    assert " from 4 source host(s), 1 of them with no check." in texts["md"]


# ---------------------------------------------------------------------------------------------- baseline


def test_baseline_lines():
    old = report_of(small_runs())
    runs = small_runs()
    runs["probe-a"]["echo"] = registered(runs["probe-a"]["plan"], {"archive": "timeout", "mwl": "rejected"})
    report = report_of(runs, baseline=old, baseline_source="old.json")
    texts = render(report, "md", "html", failures_limit=1)
    assert "### Broke (1)\n\n- probe-a as CT1 -> ARCHIVE (archive): success => timeout (not ok)\n" in texts["md"]
    assert "### Fixed" not in texts["md"], "only the kinds with pairs"
    assert "<li>probe-a as CT1 -&gt; ARCHIVE (archive): success =&gt; timeout (not ok)</li>" in texts["html"]
    console = build_view(report, "summary")["console"]
    assert console[1].startswith("against baseline old.json (2025-01-02T03:04:05Z): 1 broke, 0 fixed")
    assert console[2] == "PARTIAL report: 2 check(s) did not run"
    assert console[3].startswith("REGRESSION probe-a as CT1 -> ARCHIVE")


def test_a_baseline_of_another_audit_is_pointed_out():
    old = report_of(small_runs(), title="Site B audit")
    same = build_view(report_of(small_runs(), baseline=report_of(small_runs()), baseline_source="b.json"), "summary")
    assert "another audit" not in same["console"][1]
    report = report_of(small_runs(), baseline=old, baseline_source="site-b/latest.json")
    assert report["baseline"]["title"] == "Site B audit"
    console = build_view(report, "summary")["console"]
    assert console[1].endswith("; note: the baseline is a report of another audit, titled 'Site B audit'")
    assert "titled 'Site B audit'.\n" in render(report, "md")
    assert "titled &#39;Site B audit&#39;" in render(report, "html")


def expectation_changed():
    """ws-1 -> mwl expected reject before, accept now, rejected both times; ws-1 -> router new and timing out."""
    old = report_of(small_runs())
    runs = small_runs()
    p3 = plan("ws-1", ["ws1"], [{"name": "mwl", "expect": "accept"}, "archive", "router"])
    runs["ws-1"] = {"plan": p3, "echo": registered(p3, {"mwl": "rejected", "router": "timeout"})}
    return report_of(runs, baseline=old, baseline_source="old.json")


def test_baseline_lines_show_an_expectation_that_changed():
    report = expectation_changed()
    line = "ws-1 as WS1 -> MWL (mwl): rejected (expect reject) => rejected (expect accept, not ok)"
    texts = render(report, "md", "html")
    assert "- %s\n" % line in texts["md"]
    assert "<li>%s</li>" % line.replace(">", "&gt;") in texts["html"]
    assert "REGRESSION " + line in build_view(report, "summary")["console"]
    # Without a change of expectation, none is shown.
    assert "- ws-1 as WS1 -> ROUTER\\_B (router): absent => timeout (not ok)\n" in texts["md"]


def test_baseline_counts_and_lines_say_how_many_failures_are_new():
    report = expectation_changed()
    counts = {"broke": 1, "fixed": 0, "appeared": 1, "disappeared": 0, "changed": 0, "new_failures": 2, "peer_changes": 0}
    summary = build_view(report, "summary")
    assert summary["baseline_counts"] == counts
    assert summary["console"][1] == ("against baseline old.json (2025-01-02T03:04:05Z): "
                                     "1 broke, 0 fixed, 1 appeared, 0 disappeared, 0 changed; 2 new failure(s)")
    text = "1 broke, 0 fixed, 1 appeared, 0 disappeared, 0 changed; 2 new failure(s)"
    html = render(report, "html")
    assert text in html and "broke since baseline<span class=\"n\">1</span>" in html
    # A report written before new_failures existed: counted from its lists, and its sides have no expect.
    old_form = copy.deepcopy(report)
    del old_form["baseline"]["counts"]["new_failures"]
    for kind in DIFF_KINDS:
        for pair in old_form["baseline"][kind]:
            for side in (pair["before"], pair["after"]):
                if side:
                    del side["expect"]
    assert build_view(old_form, "summary")["baseline_counts"] == counts
    md = render(old_form, "md")
    assert text + "." in md and "- ws-1 as WS1 -> MWL (mwl): rejected => rejected (not ok)\n" in md


def test_baseline_lines_escape_the_texts_not_our_arrows():
    old = report_of(small_runs())
    for old_cell in old["cells"]:
        old_cell["ok"] = True
    report = report_of(small_runs(), baseline=old)
    hostile = report["baseline"]["broke"][0]
    hostile.update(source_host="<b>h|1</b>", calling_ae_title="A_*B", called_ae_title="[x](y)", peer="p`q")
    hostile["before"]["outcome"], hostile["after"]["outcome"] = "a_b", "<i>&amp;"
    texts = render(report, "md", "html")
    assert "- &lt;b&gt;h\\|1&lt;/b&gt; as A\\_\\*B -> \\[x\\](y) (p\\`q): a\\_b => &lt;i&gt;&amp;amp; (not ok)\n" \
        in texts["md"]
    assert "<li>&lt;b&gt;h|1&lt;/b&gt; as A_*B -&gt; [x](y) (p`q): a_b =&gt; &lt;i&gt;&amp;amp; (not ok)</li>" \
        in texts["html"]
    assert "REGRESSION <b>h|1</b> as A_*B -> [x](y) (p`q): a_b => <i>&amp; (not ok)" in \
        build_view(report, "summary")["console"]


# ---------------------------------------------------------------------------------------------- HTML and Markdown


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.text = []
        self.script_data = {}
        self._script = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs).get("id") or "inline"
            self.script_data[self._script] = ""

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script:
            self.script_data[self._script] += data
        else:
            self.text.append(data)


def parse_html(html):
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def page_data(html):
    return json.loads(parse_html(html).script_data["data"])


def test_every_section_has_a_block_in_each_template():
    for template in TEMPLATES.values():
        source = (Path(TEMPLATES_DIR) / template).read_text()
        blocks = re.findall(r"{%-? block (\w+) -?%}", source)
        assert sorted(blocks) == sorted(name for name, _build in SECTIONS), template
        assert "#jinja2:" not in source, "plain Jinja2 reads no Ansible template header"


def test_html_page_data():
    html = render(report_of(small_runs()), "html", failures_limit=2)
    parser = parse_html(html)
    rows = [tag for tag in parser.tags if tag[0] == "tr"]
    failures = [attrs for tag, attrs in parser.tags if tag == "details"]
    assert failures and "open" in failures[-1], "3 cells not ok: the list starts open"
    text = "".join(parser.text)
    assert "Not ok (3): 1 not as expected, 2 not run" in text and "… and 1 more in the CSV and JSON reports." in text
    assert rows
    options = [(attrs.get("value"), tag) for tag, attrs in parser.tags if tag == "option"]
    assert len(options) == 2 + 3 + 2, "all + the calling sites (A, B, none), all + the called sites (A, B)"
    data = page_data(html)
    assert data["sites"] == ["Site A", "Site B", "(no site)"]
    assert len(data["cells"]) == len(data["rows"]) == 3
    cell = data["cells"][0][1]  # CT1 -> mwl: rejected, expected accept; no round trip
    details = data["details"][cell[1]]
    assert cell == [1, cell[1]] and data["outcomes"][details[0]] == "rejected" and details[1] == 0
    assert data["symbols"][details[0]] == SYMBOLS["rejected"] and data["expects"][details[2]] == "accept"
    assert data["strings"][details[3]] == "echo rejected" and data["phases"][details[6]] == "release"
    archive = data["cells"][0][0]  # CT1 -> archive: success, with its round trip
    assert archive[0] == 0 and archive[2] == [1.0, 1.5, 2.0] and data["details"][archive[1]][5] == 0
    # One entry per distinct answer: 7 cells, 4 answers (success; rejected, expected accept or reject; not run).
    assert len(data["details"]) == 4 and sum(len(row) for row in data["cells"]) == 7
    assert data["failing_columns"] == [0, 1, 2] and data["failing_rows"] == [0, 1]
    assert data["rows"][2][4] == "<script>alert(1)</script>", "data stays intact, escaped only for the script element"


def test_html_data_gives_one_echo_round_trip_as_one_number():
    runs = small_runs()
    for result in runs["probe-a"]["echo"]["results"][0]["results"]:
        result["rtt_ms"] = {"min": 3.25, "avg": 3.25, "max": 3.25}
    data = page_data(render(report_of(runs), "html"))
    assert data["cells"][0][0][2] == 3.25 and data["cells"][2][0][2] == [1.0, 1.5, 2.0]


def test_limits_are_whole_numbers_from_zero():
    report = report_of(small_runs())
    # Digits as text, as -e gives them, are numbers; 0 hides every failure instead of none.
    texts = render(report, "md", "html", markdown_max_columns="0", failures_limit="0")
    assert "The matrix has 3 columns, more than fit here (0): see the HTML report." in texts["md"]
    assert "| calling AE |" not in texts["md"] and "Every check answered" not in texts["md"]
    assert "… and 3 more in the CSV and JSON reports." in texts["md"]
    assert "… and 3 more in the CSV and JSON reports." in texts["html"] and "<td>echo rejected" not in texts["html"]
    for name in ("markdown_max_columns", "failures_limit"):
        for bad in (-1, "-1", "many", 2.5, True, None):
            with pytest.raises(AuditMatrixError, match="^%s must be a whole number >= 0, got " % name):
                render(report, "md", **{name: bad})


def markdown_matrix(md):
    table = md[md.index("## Matrix"):]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in table.splitlines()
            if line.startswith("|") and not line.startswith("|---")]


def test_markdown_matrix_only_when_it_fits():
    md = render(report_of(small_runs()), "md")
    lines = markdown_matrix(md)
    assert lines[0] == ["calling \\ called", "ARCHIVE", "MWL", "ROUTER\\_B"]
    assert [line[0] for line in lines if line[0].startswith("**")] == ["**Site A**", "**Site B**", "**(no site)**"]
    # A cell that is not ok is bold, with a "!": CT1 is expected to reach MWL.
    assert lines[2] == ["CT1 (probe-a)", SYMBOLS["success"], "**%s!**" % SYMBOLS["rejected"], SYMBOLS["success"]]
    assert lines[-1] == ["WS1 (ws-1)", SYMBOLS["success"], SYMBOLS["rejected"], ""]
    assert all(len(line) == 4 for line in lines)
    assert "|\n\n|" not in md[md.index("## Matrix"):], "a blank line would end the Markdown table"
    assert "## Matrix" in render(report_of(small_runs()), "md", markdown_max_columns=2)
    assert "more than fit here (2)" in render(report_of(small_runs()), "md", markdown_max_columns=2)


def test_columns_with_one_ae_title_are_labelled_apart():
    registry = {"a": {"ae_title": "ARCH", "host": "h", "port": 104}, "b": {"ae_title": "ARCH", "host": "h", "port": 2762},
                "c": {"ae_title": "CALLER", "host": "x", "port": 1}}
    the_plan = resolve_host("h1", registry, ["c"], {"dicom_peers": ["a", "b"]})
    report = report_of({"h1": {"plan": the_plan, "echo": registered(the_plan)}})
    texts = render(report, "md", "html")
    assert markdown_matrix(texts["md"])[0] == ["calling \\ called", "ARCH (a)", "ARCH (b)"]
    assert [column[0] for column in page_data(texts["html"])["columns"]] == ["ARCH (a)", "ARCH (b)"]


def test_not_ok_heading_counts_both_kinds_of_not_ok():
    assert "\n## Not ok (3): 1 not as expected, 2 not run\n" in render(report_of(small_runs()), "md")
    p1 = plan("probe-a", ["ct1"], ["archive"])
    texts = render(report_of({"probe-a": {"plan": p1, "echo": registered(p1)}}), "md", "html")
    assert "\n## Not ok (0)\n\nEvery check answered as expected.\n" in texts["md"]
    assert "<details><summary>Not ok (0)</summary>\n<p>Every check answered as expected.</p>" in texts["html"]


def test_probes_section():
    runs = small_runs()
    items = runs["ws-1"]["echo"]["results"]
    items[0]["echoed_from"] = "probe-<z>"
    for result in items[0]["results"]:
        result["source_address"] = "192.0.2.99"
    texts = render(report_of(runs), "md", "html")
    assert "| WS1 | ws-1 | probe-&lt;z&gt; | 192.0.2.99 |" in texts["md"]
    assert "<tr><td>WS1</td><td>ws-1</td><td>probe-&lt;z&gt;</td><td>192.0.2.99</td></tr>" in texts["html"]
    assert "Echoed by probes" not in render(report_of(small_runs()), "md")


def test_html_matrix_is_escaped_markup_in_blocks_of_rows():
    registry = {"peer%02d" % i: {"ae_title": "P%02d" % i, "host": "192.0.2.%d" % (i + 1), "port": 104,
                                 "site": "<b>Site</b> %s" % "AB"[i % 2], "description": "<script>alert(%d)</script>" % i}
                for i in range(5)}
    runs = {}
    for h in range(45):
        registry["src%02d" % h] = {"ae_title": "S%02d'\"<x>" % h, "host": "198.51.100.%d" % (h + 1), "port": 104,
                                   "site": "<b>Site</b> %s" % "AB"[h % 2]}
        the_plan = resolve_host("host-%02d&" % h, registry, ["src%02d" % h], {"dicom_peers": sorted(
            name for name in registry if name.startswith("peer"))[: 5 - h % 2]})
        echo = registered(the_plan, {"peer03": "refused"} if h % 7 == 0 else {})
        runs["host-%02d&" % h] = {"plan": the_plan, "echo": echo}
    report = report_of(runs)
    html = render(report, "html")
    matrix = html[html.index('<div class="m" id="m">'):html.index('<div id="detail"')]
    parser = parse_html(matrix)
    assert {tag for tag, _attrs in parser.tags} <= {"table", "colgroup", "col", "thead", "tr", "th", "span", "tbody",
                                                    "td", "small", "div"}
    text = "".join(parser.text)
    assert "<b>Site</b> A" in text and "S00'\"<x>" in text and "host-00&" in text
    titles = [attrs.get("title") for tag, attrs in parser.tags if tag == "th" and attrs.get("title")]
    assert any("<script>alert(3)</script>" in title and "\n" in title for title in titles)
    assert "<script" not in matrix and "<b>" not in matrix
    cells = [attrs for tag, attrs in parser.tags if tag == "td" and (attrs.get("class") or "").startswith("o")]
    assert len(cells) == len(report["cells"]) == 45 * 5 - 22
    assert len([tag for tag, attrs in parser.tags if tag == "td"]) == 45 * 5, "an empty <td> where no check is"
    assert sum(1 for attrs in cells if attrs["class"].endswith(" x")) == 7
    rows = [attrs for tag, attrs in parser.tags if tag == "tr" and "data-r" in attrs]
    assert [int(attrs["data-r"]) for attrs in rows] == list(range(45))
    # A block never spans two sites and has at most HTML_BLOCK_ROWS rows; "a" marks blocks without problems.
    blocks = [attrs for tag, attrs in parser.tags if tag == "div" and "mc" in attrs["class"].split()]
    assert [block["style"] for block in blocks] == ["--k:%d" % k for k in (HTML_BLOCK_ROWS, 3, HTML_BLOCK_ROWS, 2)]
    assert [block["class"] for block in blocks] == ["mc s0", "mc s0", "mc s1", "mc s1 a"]  # S42 fails, S41 and S43 not
    bands = [attrs["class"] for tag, attrs in parser.tags if tag == "div" and attrs["class"].startswith("g ")]
    assert bands == ["g s0", "g s1"]
    # Every table has one <col> per column (sorted by site: P00 P02 P04, then P01 P03), with its site; the
    # failing column (P03) is marked for the problem filter, site starts for a border.
    assert matrix.count("<colgroup>") == len(blocks) + 1
    cols = [attrs["class"] for tag, attrs in parser.tags if tag == "col"]
    assert cols[:6] == ["h", "s0", "s0", "s0", "s1", "s1 f"] and cols == cols[:6] * (len(blocks) + 1)
    heads = [attrs["class"] for tag, attrs in parser.tags if tag == "th" and "class" in attrs][1:]
    assert heads == ["s0 b", "s0", "s0", "s1 b", "s1"]
    assert re.search(r"\.m col\.h\{width:(\d+)ch\}", html) and int(re.search(r"col\.h\{width:(\d+)ch", html)[1]) >= 12


def test_html_matrix_of_an_empty_report():
    html = render(report_of({}), "html")
    assert '<div class="m" id="m"><table class="mh">' in html and "<tr class=" not in html
    assert page_data(html)["cells"] == []
    assert "The matrix is empty" in render(report_of({}), "md")


# ---------------------------------------------------------------------------------------------- JSON, CSV, JUnit


def test_junit_case_time_is_the_total_time_of_failed_and_passed_checks():
    root = ElementTree.fromstring(render(report_of(small_runs()), "junit").encode("utf-8"))
    cases = {case.get("name"): case for case in root.iter("testcase")}
    # module_result: timings_ms.total 3.2 ms for every answer; a rejected association has no round trip.
    failed = cases["CT1 -> MWL (mwl) expect accept"]
    assert failed.find("failure") is not None and failed.get("time") == "0.003200"
    assert cases["CT1 -> ARCHIVE (archive) expect accept"].get("time") == "0.003200"
    assert cases["CR1 -> ARCHIVE (archive) expect accept"].get("time") == "0.000000", "not run: no time"
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert suites["probe-a as CT1"].get("time") == "0.009600"


def test_json_report_is_the_report_one_cell_per_line():
    report = report_of(small_runs())
    text = render(report, "json")
    assert json.loads(text) == json.loads(json.dumps(report))
    cell_lines = [line for line in text.splitlines() if line.startswith('  {"address"')]
    assert len(cell_lines) == len(report["cells"])
    assert json.loads(render(report_of({}), "json"))["cells"] == []


def test_csv_report():
    text = render(report_of(small_runs()), "csv")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(CSV_HEADER) and len(rows) == 8
    assert text.endswith("\r\n") and not text.endswith("\r\n\r\n")
    assert rows[1][CSV_HEADER.index("rtt_avg_ms")] == "1.5" and rows[1][CSV_HEADER.index("ok")] == "true"


def test_junit_report_is_valid_xml():
    root = ElementTree.fromstring(render(report_of(small_runs()), "junit").encode("utf-8"))
    assert root.tag == "testsuites" and root.get("tests") == "7"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert suites["probe-b as CR1"].get("errors") == "2" and suites["probe-a as CT1"].get("failures") == "1"
    assert len(root.findall(".//testcase")) == 7
    (failure,) = root.findall(".//failure")
    assert failure.get("type") == "rejected" and "expected accept" in failure.get("message")


def test_bad_input():
    report = report_of(small_runs())
    for formats in (["pdf"], "json", ["json", "xml"]):
        with pytest.raises(AuditMatrixError, match="formats must be a list of json, html, md, csv, junit"):
            render_reports(report, formats, TEMPLATES_DIR)
    with pytest.raises(AuditMatrixError, match="not a report of the dicom.network.echo_audit role"):
        render({"rows": []}, "html")
    with pytest.raises(AuditMatrixError, match="not a report of the dicom.network.echo_audit role"):
        build_view({"rows": []})
    with pytest.raises(AuditMatrixError, match="invalid JSON"):
        render("{", "csv")
    assert render_reports(report, [], TEMPLATES_DIR) == {}
    assert list(render_reports(report, ["csv", "json"], "/nonexistent")) == ["csv", "json"], \
        "the machine formats need no template"


def hostile_report():
    """A full report as a hand-edited or older JSON file may hold it: texts no cleaning has seen."""
    report = report_of(small_runs())
    report["title"] = 'Audit "<&>"\ttab'
    report["rows"].append({"id": "idle/x", "source_host": "idle", "calling": "x", "calling_ae_title": "IDLE",
                           "site": "", "kind": "", "description": "", "ae_host": "", "ae_port": None,
                           "echoed_from": None})
    for index, cell in enumerate(report["cells"]):
        cell["message"] = '=cmd|"/c calc"!A1 <b>&amp;</b>\r\nline\ttab "q" \'s\' 50%% #%d' % index
        cell["peer_implementation_version"] = "<img src=x onerror=alert(1)>"
        if not cell["ok"]:
            cell["status"] = 0xC001
            cell["rtt_ms"] = {"avg": 2.5}
    # Services with names no pydicom has, as a hand-edited report (or a hostile peer's UID) may hold them.
    report["cells"][0]["services"] = HOSTILE_SERVICES
    report["cells"][-1]["services"] = [dict(HOSTILE_SERVICES[1], result=None, transfer_syntax=None)]
    return report


HOSTILE_SERVICES = [
    {"sop_class": "CTImageStorage", "uid": "1.2.840.10008.5.1.4.1.1.2", "required": True, "accepted": True,
     "transfer_syntax": "1.2.840.10008.1.2.1", "result": "acceptance"},
    {"sop_class": '=HYPERLINK("x")<script>*_|]', "uid": "1.2.3.4", "required": True, "accepted": False,
     "transfer_syntax": None, "result": "abstract-syntax-not-supported</failure>&"},
    {"sop_class": "<b>Found</b>", "uid": "1.2.3.5", "required": False, "accepted": True,
     "transfer_syntax": "1.2.840.10008.1.2", "result": "acceptance"},
]


def services_text(cell):
    """The CSV's services_refused and services, from the cell's services list."""
    services = cell.get("services") or []
    return (";".join(s["sop_class"] for s in services if s["required"] and not s["accepted"] and s["result"]),
            ";".join("%s=%s%s" % (s["sop_class"], s["result"] or "not-negotiated", "" if s["required"] else " (discovered)")
                     for s in services))


def csv_reference(report):
    """The CSV report as it was written before the packed form: one csv writer record per cell."""
    probes = {row["id"]: row["echoed_from"] for row in report["rows"] if row.get("echoed_from")}
    changes = {(pair["source_host"], pair["calling_ae_title"], pair["peer"]): "; ".join(pair["changes"])
               for pairs in (report.get("baseline") or {}).values() if isinstance(pairs, list)
               for pair in pairs if pair.get("changes")}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for cell in report["cells"]:
        rtt = cell["rtt_ms"] or {}
        writer.writerow([csv_field(value) for value in (
            cell["source_host"], cell["calling_ae_title"], cell["calling_site"], cell["peer"], cell["called_ae_title"],
            cell["called_site"], cell["peer_host"], cell["peer_port"], cell["expect"], cell["outcome"], cell["ok"],
            cell["message"], cell["phase"], cell["status"], rtt.get("min"), rtt.get("avg"), rtt.get("max"),
            cell["peer_implementation_version"], cell["started_at"], cell["not_run_reason"], cell.get("source_address"),
            probes.get(cell["row"])) + services_text(cell) + (
            (cell.get("tls_certificate") or {}).get("days_left"), cell.get("attempts", 1),
            changes.get((cell["source_host"], cell["calling_ae_title"], cell["peer"]), ""))])
    return buffer.getvalue()


def case_seconds(cell):
    """A case's time: the check's total time, passing or failing; the round trip where a cell has no total."""
    total = (cell["timings_ms"] or {}).get("total")
    if total is None:
        total = (cell["rtt_ms"] or {}).get("avg")
    return (total or 0) / 1000.0


def service_cases(suite, classname, name, cell):
    for service in cell.get("services") or []:
        if not service["required"]:
            continue
        case = ElementTree.SubElement(suite, "testcase", {
            "classname": classname, "name": "%s provides %s" % (name, service["sop_class"]), "time": "0.000000"})
        if service["accepted"]:
            continue
        if service["result"] is None:
            message = "not negotiated: %s: %s" % (cell["outcome"], cell["message"])
            ElementTree.SubElement(case, "skipped", {"message": message})
            continue
        failure = ElementTree.SubElement(case, "failure", {
            "type": "service_refused", "message": "%s refused: %s" % (service["sop_class"], service["result"])})
        failure.text = "\n".join(line for line in (
            "service: %s" % service["sop_class"], "uid: %s" % service["uid"] if service["uid"] else "",
            "result: %s" % service["result"], "peer: %s:%s" % (cell["peer_host"], cell["peer_port"])) if line)


def junit_reference(report):
    """The JUnit report as ElementTree writes it (times from timings_ms.total)."""
    def rtt_text(rtt):
        if not rtt or rtt.get("avg") is None:
            return ""
        return "%s / %s / %s ms" % tuple("%g" % rtt[key] if rtt.get(key) is not None else "?"
                                         for key in ("min", "avg", "max"))

    def required(cell):
        return [s for s in cell.get("services") or [] if s["required"]]

    def refused(services):
        return sum(1 for s in services if not s["accepted"] and s["result"])

    def skipped(services):
        return sum(1 for s in services if s["result"] is None)

    summary = report["summary"]
    stamp = report.get("generated_at") or ""
    every = [s for cell in report["cells"] for s in required(cell)]
    root = ElementTree.Element("testsuites", {
        "name": report.get("title") or "DICOM echo audit", "tests": str(summary["total"] + len(every)),
        "failures": str(summary["failed"] + refused(every)), "errors": str(summary["not_run"]), "timestamp": stamp})
    if skipped(every):
        root.set("skipped", str(skipped(every)))
    by_row = {}
    for cell in report["cells"]:
        by_row.setdefault(cell["row"], []).append(cell)
    for row in report["rows"]:
        cells = by_row.get(row["id"], [])
        seconds = [case_seconds(cell) for cell in cells]
        services = [s for cell in cells for s in required(cell)]
        suite = ElementTree.SubElement(root, "testsuite", {
            "name": "%s as %s" % (row["source_host"], row["calling_ae_title"]), "hostname": row["source_host"],
            "tests": str(len(cells) + len(services)),
            "failures": str(sum(1 for c in cells if not c["ok"] and c["outcome"] != NOT_RUN) + refused(services)),
            "errors": str(sum(1 for c in cells if c["outcome"] == NOT_RUN)), "skipped": str(skipped(services)),
            "time": "%.6f" % sum(seconds), "timestamp": stamp})
        for cell, time_s in zip(cells, seconds):
            classname = "dicom.echo.%s.%s" % (row["source_host"], row["calling_ae_title"])
            name = "%s -> %s (%s)" % (row["calling_ae_title"], cell["called_ae_title"], cell["peer"])
            case = ElementTree.SubElement(suite, "testcase", {
                "classname": classname, "name": "%s expect %s" % (name, cell["expect"]), "time": "%.6f" % time_s})
            service_cases(suite, classname, name, cell)
            if cell["ok"]:
                continue
            problem = ElementTree.SubElement(case, "error" if cell["outcome"] == NOT_RUN else "failure", {
                "type": cell["outcome"], "message": "%s, expected %s: %s" % (cell["outcome"], cell["expect"],
                                                                             cell["message"])})
            problem.text = "\n".join(line for line in (
                "outcome: %s" % cell["outcome"], "expect: %s" % cell["expect"], "message: %s" % cell["message"],
                "phase: %s" % cell["phase"] if cell["phase"] else "",
                "status: 0x%04X" % cell["status"] if cell["status"] is not None else "",
                "rtt: %s" % rtt_text(cell["rtt_ms"]) if cell["rtt_ms"] else "",
                "peer implementation: %s" % cell["peer_implementation_version"]
                if cell["peer_implementation_version"] else "",
                "peer: %s:%s" % (cell["peer_host"], cell["peer_port"]),
            ) if line)
    ElementTree.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


@pytest.mark.parametrize("report", [report_of(small_runs()), hostile_report(), report_of({})],
                         ids=["small", "hostile", "empty"])
def test_csv_and_junit_are_what_the_csv_writer_and_elementtree_write(report):
    texts = render(report, "csv", "junit")
    assert texts["csv"] == csv_reference(report)
    assert render(json.dumps(report), "csv") == csv_reference(report)
    assert texts["junit"] == junit_reference(report)
    ElementTree.fromstring(texts["junit"].encode("utf-8"))


def test_every_format_reads_the_packed_form_as_the_report():
    plans, results = split(small_runs())
    old = build_report(plans, results, "2025-01-01T03:04:05Z")
    results["probe-a"] = registered(plans["probe-a"], {"archive": "timeout"})
    report = build_report(plans, results, "2025-01-02T03:04:05Z", baseline=old, baseline_source="old.json")
    packed = build_packed(plans, results, "2025-01-02T03:04:05Z", baseline=old, baseline_source="old.json")
    assert build_view(packed, "summary") == build_view(report, "summary")
    for form in (packed, json.dumps(packed)):
        assert render(form) == render(report)
    text = render(packed, "json")
    assert "packed_cells" not in text and '"variants"' not in text and '"packing"' not in text
    assert json.loads(text) == json.loads(json.dumps(report))


def test_json_of_packed_cells_is_what_json_writes_of_each_cell():
    """The JSON report of a packed matrix is put together from parts: byte for byte the cells' own encoding,
    with numbers of every shape (one round trip, three, some missing, none; timings with keys missing)."""
    runs = small_runs()
    results = runs["probe-a"]["echo"]["results"][0]["results"]
    results[0]["rtt_ms"] = {"min": 0.25, "avg": 0.25, "max": 0.25}
    results[1]["rtt_ms"] = {"avg": 7.0}
    results[2]["rtt_ms"] = {"min": 1, "avg": 2.5, "max": 4}
    results[2]["timings_ms"] = {"connect": 0.0, "associate": -0.0, "echo": 1e-3, "release": 12345.678, "total": 99}
    results[0]["started_at"] = 'x"%s%%\\u2028'
    plans, results_by_host = split(runs)
    packed = build_packed(plans, results_by_host, "2025-01-02T03:04:05Z")
    report = build_report(plans, results_by_host, "2025-01-02T03:04:05Z")
    assert render(packed, "json") == render(report, "json")
    lines = [json.loads(line.rstrip(",")) for line in render(packed, "json").splitlines()
             if line.startswith('  {"address"')]
    assert lines == json.loads(json.dumps(report["cells"]))


# ---------------------------------------------------------------------------------------------- hostile strings

XSS_DESCRIPTION = "<script>alert(1)</script>"
XSS_VERSION = "<img src=x onerror=alert(2)>"
XSS_TITLE = "A<B>&\"C'"  # a valid AE title: printable ASCII without backslash
FORMULA_MESSAGE = "=HYPERLINK(\"http://evil.example\",\"click\")"
XSS_MESSAGE = "<svg onload=alert(3)> peer closed"
CMD_MESSAGE = "=cmd|' /C calc'!A0 ]]></failure><x/> \x07\x1b[31m"
MARKDOWN_TITLE = "P|`x`[l](u)*_"

HOSTILE_REGISTRY = {
    "archive": {"ae_title": "PACS_ARCHIVE", "host": "192.0.2.10", "port": 104, "site": "Site A", "kind": "archive",
                "description": "Central archive ]]> </script>"},
    "mwl": {"ae_title": "RIS_MWL", "host": "192.0.2.20", "port": 107, "site": "Site A", "kind": "ris"},
    "evil": {"ae_title": XSS_TITLE, "host": "192.0.2.66", "port": 104, "site": "<b>Site</b> B", "kind": "printer",
             "description": XSS_DESCRIPTION},
    "pipe": {"ae_title": MARKDOWN_TITLE, "host": "192.0.2.67", "port": 104, "site": "Site A", "kind": "modality",
             "description": "tab\there, bell\x07, nul\x00 & 'quotes'"},
    "ct1": {"ae_title": "CT1", "host": "192.0.2.41", "port": 104, "site": "Site A", "kind": "modality"},
    "mr1": {"ae_title": "MR1", "host": "192.0.2.42", "port": 104, "site": "Site A", "kind": "modality"},
    "ws1": {"ae_title": "WS1", "host": "198.51.100.61", "port": 11112, "site": "<b>Site</b> B", "kind": "workstation"},
}
HOSTILE_HOSTS = {
    "probe-a": (["ct1", "mr1"], ["mwl", "archive", "evil", "pipe"]),
    "ws-1": (["ws1"], [{"name": "mwl", "expect": "reject"}, "archive", "evil", "pipe"]),
    "probe-down": (["mr1"], ["mwl", "archive", "evil", "pipe"]),
}
HOSTILE_OUTCOMES = {"CT1>archive": "refused", "WS1>evil": "aborted"}


@pytest.fixture(scope="module")
def hostile():
    """Every format of an audit with hostile inventory and peer strings: 3 hosts, 16 checks, 2 not as expected,
    4 not run (probe-down unreachable)."""
    runs = {}
    for host, (local, peers) in HOSTILE_HOSTS.items():
        the_plan = resolve_host(host, HOSTILE_REGISTRY, local, {"dicom_peers": peers})
        if host == "probe-down":
            echo = {"msg": "All items completed", "unreachable": True, "results": [
                {"item": call, "unreachable": True, "msg": "Failed to connect to the host via ssh: <b>no route</b>"}
                for call in the_plan["calls"]]}
        else:
            items = []
            for call in the_plan["calls"]:
                results = []
                for spec in call["peers"]:
                    outcome = HOSTILE_OUTCOMES.get("%s>%s" % (call["calling_ae_title"], spec["name"]))
                    if outcome is None:
                        outcome = {"accept": "success", "reject": "rejected", "blocked": "timeout"}[spec["expect"]]
                    result = module_result(spec, call["calling_ae_title"], outcome)
                    result["peer"]["implementation_version_name"] = XSS_VERSION
                    result["message"] = {"mwl": FORMULA_MESSAGE, "evil": XSS_MESSAGE, "pipe": CMD_MESSAGE}.get(
                        spec["name"], result["message"])
                    results.append(result)
                items.append({"item": call, "changed": False, "results": results, "msg": "done"})
            echo = {"changed": False, "msg": "All items completed", "results": items}
        runs[host] = {"plan": the_plan, "echo": echo}
    report = report_of(runs, title="Audit <i>of</i> `site` | A & B")
    return render(report)


def test_hostile_json_keeps_every_string_as_data(hostile):
    report = json.loads(hostile["json"])
    assert report["schema_version"] == 1
    assert sorted(report) == ["baseline", "cells", "columns", "complete", "generated_at", "partial_reasons", "rows",
                              "schema_version", "scope", "sites", "started_at", "summary", "title"]
    assert report["summary"]["total"] == 16 and report["summary"]["failed"] == 2 and report["summary"]["not_run"] == 4
    assert {cell["called_ae_title"] for cell in report["cells"]} >= {XSS_TITLE, MARKDOWN_TITLE}
    assert XSS_VERSION in {cell["peer_implementation_version"] for cell in report["cells"]}
    # Control characters were replaced when the report was built, once for every format.
    pipe = [cell for cell in report["cells"] if cell["peer"] == "pipe" and cell["outcome"] != NOT_RUN]
    assert pipe and pipe[0]["message"] == "=cmd|' /C calc'!A0 ]]></failure><x/> \ufffd\ufffd[31m"
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", hostile["json"])


def assert_no_injected_markup(html):
    parser = parse_html(html)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts == [{"type": "application/json", "id": "data"}, {}], "only the page's own two scripts"
    assert not [tag for tag, attrs in parser.tags if tag in ("img", "svg", "i", "b", "x") or
                any(name.startswith("on") for name in attrs)]
    return parser


def test_hostile_html_escapes_everything_and_embeds_data_safely(hostile):
    html = hostile["html"]
    parser = assert_no_injected_markup(html)
    for raw in (XSS_DESCRIPTION, XSS_VERSION, XSS_MESSAGE, XSS_TITLE, "<b>no route</b>", "<i>of</i>"):
        assert raw not in html
    assert "A&lt;B&gt;&amp;&#34;C&#39;" in html and "&lt;svg onload=alert(3)&gt; peer closed" in html
    text = "".join(parser.text)
    assert XSS_TITLE in text and XSS_MESSAGE in text and "<b>Site</b> B" in text, "shown literally once decoded"
    assert "Audit <i>of</i> `site` | A & B" in text
    titles = [attrs.get("title", "") for tag, attrs in parser.tags if tag == "th"]
    assert any(XSS_DESCRIPTION in title for title in titles), "description in a title attribute, as text"
    data_text = parser.script_data["data"]
    assert "<" not in data_text and ">" not in data_text and "&" not in data_text
    data = json.loads(data_text)
    assert XSS_VERSION in data["strings"] and XSS_DESCRIPTION in [column[5] for column in data["columns"]]
    assert "host unreachable: Failed to connect to the host via ssh: <b>no route</b>" in data["strings"]
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src 'none'" in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), "no external asset"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "no inline handler: the CSP would block it"


def test_html_csp_names_the_pages_own_script_by_its_hash(hostile):
    html = hostile["html"]
    # Only the page's own script may run: the CSP names it by its hash, so injected markup could not.
    (policy,) = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    (script_src,) = [part.split()[1:] for part in policy.split(";") if part.split()[0] == "script-src"]
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert script_src == ["'sha256-%s'" % base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
                          for text in scripts], "update the hash in report.html.j2 after changing its script"


def test_hostile_markdown_escapes_and_puts_failures_first(hostile):
    markdown = hostile["md"]
    assert "<script>" not in markdown and "<img" not in markdown and "<b>" not in markdown and "<svg" not in markdown
    assert "A&lt;B&gt;&amp;\"C'" in markdown
    assert markdown.startswith("# Audit &lt;i&gt;of&lt;/i&gt; \\`site\\` \\| A &amp; B\n")
    assert "P\\|\\`x\\`\\[l\\](u)\\*\\_" in markdown and MARKDOWN_TITLE not in markdown
    assert markdown.index("## Not ok (") < markdown.index("## Matrix")
    assert "## Summary" in markdown and "| 16 | 10 | 2 | 4 |" in markdown
    assert "&lt;svg onload=alert(3)&gt; peer closed" in markdown and "&lt;b&gt;Site&lt;/b&gt; B" in markdown
    assert "host unreachable: Failed to connect to the host via ssh: &lt;b&gt;no route&lt;/b&gt;" in markdown
    assert markdown.index("## Legend") < markdown.index("## Matrix")
    table = markdown_matrix(markdown)
    assert {len(line) for line in table} == {5}, "every table line has its cells: no pipe got through"
    assert "probe-down" in markdown[markdown.index("## Matrix"):]
    assert markdown[markdown.index("## Matrix"):].count("\u25CB") == 4
    assert "|\n\n|" not in markdown[markdown.index("## Matrix"):], "a blank line would end the Markdown table"
    failures = [line for line in markdown.splitlines() if line.startswith("| ") and "expected" not in line
                and line.count(" | ") >= 6 and "---" not in line]
    assert failures and all(len(re.split(r"(?<!\\)\|", line)) == 9 for line in failures)


def test_hostile_junit_is_valid_xml_with_one_testcase_per_cell(hostile):
    root = ElementTree.fromstring(hostile["junit"].encode("utf-8"))
    cases = root.findall(".//testcase")
    assert len(cases) == 16
    assert len(root.findall(".//testcase/failure")) == 2 and len(root.findall(".//testcase/error")) == 4
    assert any(XSS_MESSAGE in (failure.get("message") or "") for failure in root.iter("failure"))
    names = [case.get("name") for case in cases]
    assert any(XSS_TITLE in name for name in names), "attribute round-trips the hostile AE title"
    assert any(MARKDOWN_TITLE in name for name in names)
    details = " ".join(element.text or "" for element in root.iter())
    assert "<b>no route</b>" in details
    assert "<x/>" not in hostile["junit"] and "]]></failure>" not in hostile["junit"]
    assert root.get("name") == "Audit <i>of</i> `site` | A & B"


def test_hostile_csv_has_one_row_per_cell_and_no_formula(hostile):
    rows = list(csv.DictReader(io.StringIO(hostile["csv"], newline="")))
    assert len(rows) == 16
    mwl = [row for row in rows if row["peer"] == "mwl" and row["outcome"] != "not_run"]
    assert mwl and all(row["message"] == "'" + FORMULA_MESSAGE for row in mwl)
    pipe = [row for row in rows if row["peer"] == "pipe" and row["outcome"] != "not_run"]
    assert pipe and all(row["message"].startswith("'=cmd|") for row in pipe)
    assert any(row["peer_implementation_version"] == XSS_VERSION for row in rows)
    assert all(not value.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for value in row.values() if value)
    assert {row["called_ae_title"] for row in rows} >= {XSS_TITLE, MARKDOWN_TITLE}


def test_a_hand_edited_report_with_control_characters_still_gives_well_formed_xml():
    report = hostile_report()
    report["title"] = "bell\x07 nul\x00 esc\x1b"
    report["cells"][1]["message"] = "form feed\x0c ]]> <x/>"
    texts = render(report)
    root = ElementTree.fromstring(texts["junit"].encode("utf-8"))
    assert root.get("name") == "bell\ufffd nul\ufffd esc\ufffd"
    assert any(failure.get("message", "").endswith("form feed\ufffd ]]> <x/>") for failure in root.iter("failure"))
    assert_no_injected_markup(texts["html"])
    assert "<x/>" not in texts["md"] and "\n" not in markdown_escape(report["cells"][0]["message"])
    assert json.loads(texts["json"])["title"] == report["title"]


# ---------------------------------------------------------------------------------------------- services

EVIL_SERVICE = '=HYPERLINK("x")<img src=x onerror=alert(1)>|*_'


def services_report(**options):
    """Two hosts whose archive accepts CT, refuses a service with a hostile name and answers a discovered one."""
    answered = [service("CTImageStorage"), service(EVIL_SERVICE, accepted=False, uid="1.2.3.4"),
                service("MRImageStorage", required=False)]
    return report_of(services_runs(answered), **options)


def test_services_refused_section_in_markdown_and_html_with_every_name_escaped():
    texts = render(services_report())
    markdown = texts["md"]
    section = markdown[markdown.index("## Services refused (2)"):markdown.index("## Legend")]
    lines = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[0] == "| calling AE | source host | called AE | peer | service | result |"
    assert lines[1] == ("| CT1 | probe-a | ARCHIVE | archive | =HYPERLINK(\"x\")&lt;img src=x onerror=alert(1)&gt;\\|\\*\\_ "
                        "| abstract-syntax-not-supported |").replace("\\\\", "\\")
    assert len(lines) == 3 and all(len(re.split(r"(?<!\\)\|", line)) == 8 for line in lines)
    assert markdown.index("## Not ok (") < markdown.index("## Services refused") < markdown.index("## Matrix")
    assert "\u25D1 | service\\_rejected | 2 |" in markdown
    html = texts["html"]
    parser = assert_no_injected_markup(html)
    assert EVIL_SERVICE not in html
    text = "".join(parser.text)
    assert "Services refused (2)" in text and EVIL_SERVICE + "abstract-syntax-not-supported" in text
    # The cell's details: required services with their results, then what discovery found.
    data = page_data(html)
    assert "services:\n  ok CTImageStorage: acceptance (1.2.840.10008.1.2.1)\n  REFUSED %s: " \
        "abstract-syntax-not-supported\n  discovered: 1 of 1 accepted: MRImageStorage" % EVIL_SERVICE in data["strings"]
    # No refused service: no section.
    assert "Services refused" not in render(report_of(small_runs()), "md")


def test_services_in_csv_json_and_junit():
    texts = render(services_report())
    rows = list(csv.DictReader(io.StringIO(texts["csv"], newline="")))
    archive = [row for row in rows if row["peer"] == "archive"]
    assert [row["services_refused"] for row in archive] == ["'" + EVIL_SERVICE] * 2
    assert archive[0]["services"] == "CTImageStorage=acceptance;%s=abstract-syntax-not-supported;" \
        "MRImageStorage=acceptance (discovered)" % EVIL_SERVICE
    assert all(row["services"] == "" for row in rows if row["peer"] == "mwl")
    cells = json.loads(texts["json"])["cells"]
    assert [s["sop_class"] for s in cells[0]["services"]] == ["CTImageStorage", EVIL_SERVICE, "MRImageStorage"]
    root = ElementTree.fromstring(texts["junit"].encode("utf-8"))
    names = [case.get("name") for case in root.iter("testcase")]
    # Per archive cell: its own case and one per required service; the discovered one is no test.
    assert names[:3] == ["CT1 -> ARCHIVE (archive) expect accept", "CT1 -> ARCHIVE (archive) provides CTImageStorage",
                         "CT1 -> ARCHIVE (archive) provides %s" % EVIL_SERVICE]
    assert (root.get("tests"), root.get("failures")) == ("8", "4")
    refused = [failure for failure in root.iter("failure") if failure.get("type") == "service_refused"]
    assert [failure.get("message") for failure in refused] == [
        "%s refused: abstract-syntax-not-supported" % EVIL_SERVICE] * 2


def test_a_service_regression_is_named_in_every_baseline_view():
    old = report_of(services_runs([service("CTImageStorage"), service("EnhancedCTImageStorage", accepted=False)]))
    new = report_of(services_runs([service("CTImageStorage", accepted=False),
                                   service("EnhancedCTImageStorage", accepted=False)]), baseline=old)
    line = ("probe-a as CT1 -> ARCHIVE (archive): service_rejected (not ok) => service_rejected (not ok) "
            "[refused now: CTImageStorage]")
    assert "REGRESSION " + line in build_view(new)["console"]
    assert "- " + line.replace("_", "\\_").replace("[", "\\[").replace("]", "\\]") in render(new, "md")
