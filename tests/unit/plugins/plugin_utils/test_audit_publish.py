"""Publishing logic: history checks, merge and keep-last-N pruning, the index data and its chart, the e-mail."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.dicom.network.plugins.plugin_utils.audit_publish import (
    CHART_HEIGHT,
    CHART_WIDTH,
    FORMATS,
    HISTORY_KIND,
    STAMP,
    AuditPublishError,
    chart,
    check_mail,
    check_settings,
    history_document,
    history_text,
    index_view,
    load_history,
    mail_message,
    merge_run,
    pass_rate,
    plan_publish,
    prune,
    run_entry,
    stamp_of,
)
from tests.unit.plugins.plugin_utils.test_audit_matrix import report_of, small_runs

ALL = ["json", "html", "md", "csv", "junit"]


def entry(run_stamp, ok=1, total=2, **extra):
    """A history entry as the role writes it."""
    s = run_stamp
    run = {"stamp": s, "generated_at": "%s-%s-%sT%s:%s:%sZ" % (s[0:4], s[4:6], s[6:8], s[9:11], s[11:13], s[13:15]),
           "started_at": None, "title": "Audit", "formats": ["json", "html"], "total": total, "ok": ok,
           "failed": total - ok, "not_run": 0, "complete": True, "partial_reasons": [], "source_hosts": 1}
    run.update(extra)
    return run


def history(*runs):
    return json.dumps({"kind": HISTORY_KIND, "schema_version": 1, "updated_at": None, "runs": list(runs)})


def stamp(n):
    """The n-th second of 2025-01-01 as a stamp; stamps sort like n."""
    return "20250101T%02d%02d%02dZ" % (n // 3600, n // 60 % 60, n % 60)


# --- stamps, rates, settings ---------------------------------------------------------------------

def test_stamp_is_report_yml_file_name_stamp():
    assert stamp_of("2025-01-31T08:09:10Z") == "20250131T080910Z"
    for bad in ("2025-01-31T08:09:10.5Z", "2025-01-31 08:09:10", None, "../../etc", "2025-01-31T08:09:10+01:00"):
        with pytest.raises(AuditPublishError, match="generated_at"):
            stamp_of(bad)


def test_pass_rate_is_ok_over_total_and_none_without_checks():
    assert pass_rate(2, 3) == 66.7
    assert pass_rate(3, 3) == 100.0
    assert pass_rate(0, 5) == 0.0
    assert pass_rate(0, 0) is None


def test_settings_are_normalized():
    checked = check_settings("/srv/echo//audit/", 2, "0750", "0640", "https://pacs-reports.example.org/echo/")
    assert checked == {"directory": "/srv/echo/audit", "keep": 2, "dir_mode": "0750", "file_mode": "0640",
                       "base_url": "https://pacs-reports.example.org/echo"}


@pytest.mark.parametrize("kwargs, variable", [
    ({"directory": "reports"}, "echo_audit_publish_dir"),
    ({"directory": "/"}, "echo_audit_publish_dir"),
    ({"directory": "/srv/../etc"}, "echo_audit_publish_dir"),
    ({"directory": None}, "echo_audit_publish_dir"),
    ({"keep": -1}, "echo_audit_publish_keep"),
    ({"keep": True}, "echo_audit_publish_keep"),
    ({"keep": "2"}, "echo_audit_publish_keep"),
    ({"dir_mode": "750x"}, "echo_audit_publish_dir_mode"),
    ({"file_mode": 416}, "echo_audit_publish_file_mode"),
    ({"base_url": "javascript:alert(1)"}, "echo_audit_publish_base_url"),
    ({"base_url": "https://x.example.org/a b"}, "echo_audit_publish_base_url"),
    ({"base_url": "https://x.example.org/\"onclick"}, "echo_audit_publish_base_url"),
    ({"base_url": "https://x.example.org/\n"}, "echo_audit_publish_base_url"),
    ({"file_mode": "0640\n"}, "echo_audit_publish_file_mode"),
])
def test_bad_settings_name_the_variable(kwargs, variable):
    arguments = dict(directory="/srv/echo", keep=30)
    arguments.update(kwargs)
    with pytest.raises(AuditPublishError) as caught:
        check_settings(**arguments)
    assert str(caught.value).startswith(variable + " ")


# --- the run entry ---------------------------------------------------------------------------------

def test_run_entry_from_a_real_report():
    report = report_of(small_runs(), title="Site A")
    new = run_entry(json.dumps(report), ["html", "json"])
    summary = report["summary"]
    assert new["stamp"] == "20250102T030405Z" and new["generated_at"] == "2025-01-02T03:04:05Z"
    assert (new["total"], new["ok"], new["failed"], new["not_run"]) == (
        summary["total"], summary["ok"], summary["failed"], summary["not_run"])
    assert new["pass_rate"] == round(100.0 * summary["ok"] / summary["total"], 1)
    assert new["title"] == "Site A"
    assert new["formats"] == ["json", "html"]  # the role's order, whatever order they were given in
    # probe-b was unreachable: its checks did not run, so the report is partial and says why.
    assert new["complete"] is False and any("did not run" in reason for reason in new["partial_reasons"])


def test_run_entry_of_a_report_without_the_complete_flag():
    report = report_of(small_runs())
    del report["complete"], report["partial_reasons"]
    assert run_entry(report, ALL)["complete"] is None


@pytest.mark.parametrize("report, fragment", [
    ({"generated_at": "2025-01-02T03:04:05Z"}, "no summary"),
    ("{not json", "invalid JSON"),
    ({"generated_at": "2025-01-02T03:04:05Z", "summary": {"total": 1, "ok": True, "failed": 0, "not_run": 0}},
     "summary.ok"),
])
def test_run_entry_refuses_what_is_not_a_report(report, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        run_entry(report, ALL)


def test_run_entry_refuses_unknown_formats():
    with pytest.raises(AuditPublishError, match="echo_audit_report_formats"):
        run_entry(report_of(small_runs()), ["pdf"])


# --- history.json: untrusted -----------------------------------------------------------------------

def test_no_history_yet():
    assert load_history(None) == [] and load_history("") == [] and load_history("  \n") == []


@pytest.mark.parametrize("text, fragment", [
    ("{", "not valid JSON"),
    ("[]", "not a publish history"),
    (json.dumps({"runs": []}), "not a publish history"),
    (json.dumps({"kind": HISTORY_KIND, "schema_version": 2, "runs": []}), "newer than this collection"),
    (json.dumps({"kind": HISTORY_KIND, "schema_version": "1", "runs": []}), "schema_version"),
    (json.dumps({"kind": HISTORY_KIND, "schema_version": 1, "runs": {}}), "runs must be a list"),
    (history("x"), "runs[0] must be an object"),
    # The stamp becomes a path the role deletes: nothing but the exact pattern passes.
    (history(dict(entry(stamp(1)), stamp="../../etc")), "runs[0].stamp"),
    (history(dict(entry(stamp(1)), stamp=stamp(1) + "/../..")), "runs[0].stamp"),
    (history(dict(entry(stamp(1)), stamp=stamp(1) + "\n")), "runs[0].stamp"),
    (history(entry(stamp(1)), entry(stamp(1))), "listed twice"),
    (history(entry(stamp(1), ok=2, total=2, not_run=1)), "must equal total"),
    (history(entry(stamp(1), ok=True)), "runs[0].ok"),
    (history(entry(stamp(1), formats=["exe"])), "runs[0].formats"),
    (history(entry(stamp(1), title=None)), "runs[0].title"),
    (history(entry(stamp(1), complete="yes")), "runs[0].complete"),
    (history(entry(stamp(1), partial_reasons="x")), "runs[0].partial_reasons"),
])
def test_a_bad_history_is_refused_naming_what_is_wrong(text, fragment):
    with pytest.raises(AuditPublishError, match=re.escape(fragment)):
        load_history(text)


def test_history_fields_are_rebuilt_not_trusted():
    text = history(entry(stamp(1), pass_rate=99.9, title="a\u202eb\x07", files={"html": "javascript:alert(1)"},
                         path="/etc", extra="dropped"))
    (run,) = load_history(text)
    assert run["pass_rate"] == 50.0
    assert run["title"] == "a\ufffdb\ufffd"
    assert "extra" not in run and "files" not in run and "path" not in run
    (stored,) = history_document([run], None)["runs"]
    assert stored["files"] == {"json": "runs/%s/report.json" % stamp(1), "html": "runs/%s/report.html" % stamp(1)}
    assert stored["path"] == "runs/%s/" % stamp(1)


def test_the_error_names_host_and_path_and_says_nothing_changed():
    with pytest.raises(AuditPublishError) as caught:
        plan_publish("garbage", report_of(small_runs()), ALL, "/srv/echo", 2, host="reports-1")
    message = str(caught.value)
    assert message.startswith("reports-1:/srv/echo/history.json: not valid JSON")
    assert "Nothing was written or deleted on reports-1" in message


# --- merge and prune -------------------------------------------------------------------------------

def test_first_publication():
    plan = plan_publish(None, report_of(small_runs()), ALL, "/srv/echo/", 30, base_url="https://r.example.org/e")
    assert plan["stamp"] == "20250102T030405Z" and plan["kept"] == [plan["stamp"]] and plan["pruned"] == []
    assert plan["paths"] == {"directory": "/srv/echo", "history": "/srv/echo/history.json",
                             "index": "/srv/echo/index.html", "run_directory": "/srv/echo/runs/20250102T030405Z",
                             "run": "/srv/echo/runs/20250102T030405Z/report.html"}
    assert plan["urls"] == {"index": "https://r.example.org/e/index.html",
                            "run": "https://r.example.org/e/runs/20250102T030405Z/report.html"}
    assert load_history(plan["history_json"]) == load_history(plan["history"])
    assert plan["run"]["files"]["junit"] == "runs/20250102T030405Z/report.junit.xml"


def test_without_html_the_main_link_is_the_first_format_and_no_url_without_base():
    plan = plan_publish(None, report_of(small_runs()), ["csv", "md"], "/srv/echo", 30)
    assert plan["paths"]["run"].endswith("/report.md") and plan["urls"] is None


def test_keep_two_prunes_the_oldest_listed_run():
    old = history(entry("20250101T000000Z"), entry("20250102T000000Z"))
    plan = plan_publish(old, report_of(small_runs()), ALL, "/srv/echo", 2)
    assert plan["kept"] == ["20250102T030405Z", "20250102T000000Z"]
    assert plan["pruned"] == ["20250101T000000Z"]
    assert [run["stamp"] for run in plan["history"]["runs"]] == plan["kept"]


def test_a_run_in_the_same_second_replaces_its_entry():
    old = history(entry("20250102T030405Z", ok=0))
    plan = plan_publish(old, report_of(small_runs()), ALL, "/srv/echo", 2)
    assert plan["kept"] == ["20250102T030405Z"] and plan["pruned"] == []
    assert plan["run"]["ok"] == report_of(small_runs())["summary"]["ok"]


def test_the_new_run_is_kept_even_when_older_stamps_are_in_the_future():
    runs = [entry(stamp(n)) for n in (10, 20, 30)]
    kept, deleted = prune(merge_run(runs, entry(stamp(5))), 2, stamp(5))
    assert [run["stamp"] for run in kept] == [stamp(30), stamp(5)]
    assert deleted == [stamp(20), stamp(10)]


def test_keep_zero_keeps_everything():
    runs = [entry(stamp(n)) for n in range(50)]
    kept, deleted = prune(runs, 0, stamp(49))
    assert len(kept) == 50 and deleted == []


stamps = st.lists(st.integers(min_value=0, max_value=86399), unique=True, max_size=25).map(
    lambda numbers: [stamp(n) for n in numbers])


@settings(max_examples=300, deadline=None)
@given(existing=stamps, new=st.integers(min_value=0, max_value=86399), keep=st.integers(min_value=0, max_value=30))
def test_property_prune(existing, new, keep):
    new_stamp = stamp(new)
    merged = merge_run([entry(s) for s in existing], entry(new_stamp))
    kept, deleted = prune(merged, keep, new_stamp)
    all_stamps = {run["stamp"] for run in merged}
    kept_stamps = [run["stamp"] for run in kept]
    # Exactly min(N, len) runs stay (N = 0 keeps all), the new one always among them.
    assert len(kept) == (len(merged) if keep == 0 else min(keep, len(merged)))
    assert new_stamp in kept_stamps and new_stamp not in deleted
    # Kept and deleted split the history; only listed, well-formed stamps are ever deleted.
    assert set(kept_stamps).isdisjoint(deleted) and set(kept_stamps) | set(deleted) == all_stamps
    assert all(STAMP.match(s) for s in deleted)
    assert kept_stamps == sorted(kept_stamps, reverse=True)
    # When the new run is the newest, the kept ones are exactly the newest N.
    if new_stamp == max(all_stamps) and keep:
        assert kept_stamps == sorted(all_stamps, reverse=True)[:keep]


@settings(max_examples=100, deadline=None)
@given(existing=stamps, keep=st.integers(min_value=0, max_value=10),
       title=st.text(max_size=40), ok=st.integers(min_value=0, max_value=5))
def test_property_history_round_trips_through_its_file(existing, keep, title, ok):
    runs = [entry(s, ok=ok, total=5, title=title) for s in existing]
    first = load_history(history(*runs))
    again = load_history(history_text(history_document(first, None)))
    assert again == first


# --- the index page's data -------------------------------------------------------------------------

def test_index_view_links_rates_and_chart():
    text = history(entry(stamp(1), ok=1, total=2), entry(stamp(2), ok=2, total=2),
                   entry(stamp(3), ok=0, total=0, formats=["csv"]))
    view = index_view(text, title="Audit <b>")
    assert view["title"] == "Audit <b>"  # escaped by the template, not here
    assert [row["stamp"] for row in view["runs"]] == [stamp(3), stamp(2), stamp(1)]
    assert [row["rate_text"] for row in view["runs"]] == ["\u2013", "100.0 %", "50.0 %"]
    assert view["runs"][0]["main"] == "runs/%s/report.csv" % stamp(3)
    assert view["runs"][1]["links"] == [{"format": "json", "href": "runs/%s/report.json" % stamp(2)},
                                        {"format": "html", "href": "runs/%s/report.html" % stamp(2)}]
    assert view["average_text"] == "75.0 %"
    # Two runs with checks give two points; the run without checks has none.
    assert len(view["chart"]["points"]) == 2 and len(view["chart"]["polyline"].split()) == 2


def test_index_of_an_empty_history():
    view = index_view(history())
    assert view["runs"] == [] and view["latest"] is None and view["chart"]["points"] == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=86399), st.integers(min_value=0, max_value=7),
                          st.integers(min_value=0, max_value=7)), unique_by=lambda t: t[0], max_size=40))
def test_property_chart_points_stay_in_the_box_and_follow_the_rate(specs):
    runs = [entry(stamp(n), ok=min(ok, total), total=total) for n, ok, total in specs]
    drawn = chart(runs)
    rated = sorted((r for r in runs if r["total"]), key=lambda r: r["stamp"])
    assert len(drawn["points"]) == len(rated)
    xs = [float(p["x"]) for p in drawn["points"]]
    ys = [float(p["y"]) for p in drawn["points"]]
    assert all(drawn["left"] <= x <= drawn["right"] <= CHART_WIDTH for x in xs)
    assert all(drawn["top"] <= y <= drawn["bottom"] <= CHART_HEIGHT for y in ys)
    assert xs == sorted(xs)  # oldest on the left
    for run, y in zip(rated, ys):
        expected = drawn["top"] + (100 - pass_rate(run["ok"], run["total"])) * (drawn["bottom"] - drawn["top"]) / 100
        assert abs(y - expected) < 0.06


def test_formats_match_the_role_extensions():
    import yaml
    from pathlib import Path
    extensions = yaml.safe_load((Path(__file__).resolve().parents[4] / "roles" / "echo_audit" / "vars" / "main.yml")
                                .read_text())["_echo_audit_extensions"]
    assert extensions == FORMATS


# --- the e-mail -------------------------------------------------------------------------------------

def test_mail_subject_and_body():
    report = report_of(small_runs(), title="Site A")
    summary = report["summary"]
    message = mail_message(report, markdown="# Site A\n\n## Summary\n", links=["Index: https://r.example.org/index.html"])
    assert message["subject"].startswith("Site A: NOT OK, %d of %d checks ok (" % (summary["ok"], summary["total"]))
    assert message["subject"].endswith(", partial")
    lines = message["body"].splitlines()
    assert lines[0] == message["subject"]
    assert lines[1] == "Generated 2025-01-02T03:04:05Z"
    assert lines[2] == "Index: https://r.example.org/index.html"
    assert message["body"].endswith("# Site A\n\n## Summary\n")


def test_a_given_subject_stays_one_line():
    message = mail_message(report_of(small_runs()), subject="Audit\r\nBcc: everyone@example.org")
    assert message["subject"] == "Audit Bcc: everyone@example.org"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"to": []}, "echo_audit_mail_to"),
    ({"to": ["root"]}, "echo_audit_mail_to"),
    ({"sender": ""}, "echo_audit_mail_from"),
    ({"secure": "tls"}, "echo_audit_mail_secure must be"),
    ({"password_set": True}, "echo_audit_mail_password is set"),
    ({"password_set": True, "secure": "never"}, "echo_audit_mail_password is set"),
])
def test_mail_settings_that_would_fail_or_leak_are_refused(kwargs, fragment):
    arguments = dict(to=["pacs@example.org"], sender="audit@example.org", secure="try", password_set=False)
    arguments.update(kwargs)
    with pytest.raises(AuditPublishError, match=re.escape(fragment)):
        check_mail(**arguments)


def test_mail_settings_that_are_fine():
    check_mail(["PACS team <pacs@example.org>"], "audit@example.org", "starttls", True)
    check_mail(["pacs@example.org"], "audit@example.org", "try", False)
