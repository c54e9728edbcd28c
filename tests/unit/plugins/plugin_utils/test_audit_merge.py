"""Merging the reports of one audit run's slices or sites (audit_merge.py), and the identity of a run."""
from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import unpack_report
from ansible_collections.dicom.network.plugins.plugin_utils.audit_merge import (
    AuditMergeError,
    merge_reports,
    read_reports,
    registry_digests,
    run_identity,
    select_run,
)
from ansible_collections.dicom.network.plugins.plugin_utils.audit_publish import run_entry
from ansible_collections.dicom.network.plugins.plugin_utils.audit_report import render_reports
from benchmarks.synthetic import audit_reports
from tests.unit.plugins.plugin_utils.test_audit_run import TEMPLATES

NOW = "2026-12-07T20:00:00Z"


@pytest.fixture(scope="module")
def audit():
    """One play over 9 hosts x 6 peers, and the same run as 3 slices (hosts 1, 4, 7 / 2, 5, 8 / 3, 6, 9)."""
    return audit_reports(9, 6, 3, run_id="run-1")


def parts(reports):
    return [("slice-%d.json" % (index + 1), report) for index, report in enumerate(reports)]


def normalised(report):
    """The report without what differs between any two runs: times and the run's identity."""
    full = unpack_report(report)
    for key in ("generated_at", "started_at", "run"):
        full.pop(key, None)
    return full


def test_three_slices_merge_into_the_report_of_one_play(audit):
    merged = merge_reports(parts(audit["slices"]), NOW)
    assert normalised(merged) == normalised(audit["whole"])
    assert merged["complete"] and merged["partial_reasons"] == []
    assert merged["run"]["id"] == "run-1" and merged["run"]["slices"] == 3 and merged["run"]["missing"] == []
    assert [part["label"] for part in merged["run"]["parts"]] == ["slice 1 of 3", "slice 2 of 3", "slice 3 of 3"]
    # Every format renders from it, and its JSON is the single play's JSON but for times and the run.
    texts = render_reports(merged, ["json", "html", "md", "csv", "junit"], TEMPLATES)
    single = json.loads(render_reports(audit["whole"], ["json"], TEMPLATES)["json"])
    again = json.loads(texts["json"])
    assert "Run run-1, merged from 3 report(s): slice 1 of 3, slice 2 of 3, slice 3 of 3." in texts["md"]
    assert "Run run-1, merged from 3 report(s): slice 1 of 3, slice 2 of 3, slice 3 of 3." in texts["html"]
    assert "Run run-1, slice 2 of 3." in render_reports(audit["slices"][1], ["md"], TEMPLATES)["md"]
    assert run_entry(merged, ["json"])["run"] == "run-1, merged from 3 report(s)"
    assert run_entry(audit["slices"][0], ["json"])["run"] == "run-1, slice 1 of 3"
    for document in (single, again):
        for key in ("generated_at", "started_at", "run"):
            document.pop(key, None)
    assert again == single


def test_the_order_of_the_slices_does_not_matter(audit):
    forward = merge_reports(parts(audit["slices"]), NOW)
    backward = merge_reports(list(reversed(parts(audit["slices"]))), NOW)
    assert normalised(forward) == normalised(backward)


def test_the_baseline_diff_is_the_single_plays(audit):
    baseline = copy.deepcopy(unpack_report(audit["whole"]))
    changed = next(cell for cell in baseline["cells"] if cell["ok"])
    changed.update(ok=False, outcome="refused")
    text = json.dumps(baseline)
    from ansible_collections.dicom.network.plugins.plugin_utils.audit_matrix import packed_report, matrix_of
    whole = packed_report(matrix_of(audit["whole"]), NOW, title="Synthetic audit", baseline=text,
                          baseline_source="b.json")
    merged = merge_reports(parts(audit["slices"]), NOW, baseline=text, baseline_source="b.json")
    assert merged["baseline"]["counts"]["fixed"] == 1
    assert merged["baseline"] == whole["baseline"]


def test_a_planned_slice_that_never_reported_makes_the_report_partial_and_is_named(audit):
    merged = merge_reports(parts([audit["slices"][0], audit["slices"][2]]), NOW)
    assert not merged["complete"]
    assert merged["partial_reasons"][0] == "no report from slice 2 of 3"
    assert merged["run"]["missing"] == ["slice 2 of 3"]
    # The same with the slice count given by the merge and planned hosts: the hosts are named too.
    hosts = sorted(host for report in audit["slices"] for host in report["scope"]["source_hosts"])
    merged = merge_reports(parts([audit["slices"][0]]), NOW, planned_slices=3, planned_hosts=hosts)
    assert merged["partial_reasons"][:2] == [
        "no report from slice 2 of 3, slice 3 of 3",
        "6 planned source host(s) in no report: %s" % ", ".join(sorted(set(hosts) - set(
            audit["slices"][0]["scope"]["source_hosts"])))]


def test_awx_slices_without_numbers_are_counted_and_sites_are_named(audit):
    awx = copy.deepcopy(audit["slices"][:2])
    for index, report in enumerate(awx):
        report["run"].update(slice=None, slices=None, job="awx-job-%d" % (100 + index))
    merged = merge_reports(parts(awx), NOW, planned_slices=3)
    assert merged["partial_reasons"][0] == "no report from 1 of 3 slice(s)"
    sites = copy.deepcopy(audit["slices"])
    for report, site in zip(sites, ("north", "south", "east")):
        report["run"].update(slice=None, slices=None, site=site)
    merged = merge_reports(parts(sites[:2]), NOW, planned_sites=["north", "south", "east"])
    assert merged["partial_reasons"][0] == "no report from site east"
    assert [part["label"] for part in merged["run"]["parts"]] == ["site north", "site south"]


def test_reports_of_different_registries_are_refused_naming_the_aes(audit):
    other = copy.deepcopy(audit["slices"][1])
    other["run"]["registry"]["peer003"] = "0" * 16
    other["run"]["registry"]["newct"] = "1" * 16
    del other["run"]["registry"]["src000"]
    with pytest.raises(AuditMergeError) as error:
        merge_reports(parts([audit["slices"][0], other]), NOW)
    assert str(error.value) == (
        "slice-1.json and slice-2.json were built from different registries (dicom_aes): newct only in this one, "
        "peer003 differs, src000 only in the first; run every slice and site with the same inventory registry")


def test_a_slice_listed_twice_is_refused(audit):
    twice = copy.deepcopy(audit["slices"][0])
    with pytest.raises(AuditMergeError, match=r"^slice 1 of 3 is listed twice: slice-1.json and slice-3.json$"):
        merge_reports(parts([audit["slices"][0], audit["slices"][1], twice]), NOW)


def test_overlapping_source_hosts_merge_when_equal_and_are_refused_when_different(audit):
    first = audit["slices"][0]
    # The same host in a second report (a site that also audits it) with the same results: counted once.
    copied = copy.deepcopy(first)
    copied["run"].update(slice=None, slices=None, site="elsewhere")
    merged = merge_reports(parts([first, copied] + audit["slices"][1:]), NOW)
    assert normalised(merged) == normalised(audit["whole"])
    assert len(merged["run"]["notes"]) == 3 and merged["run"]["notes"][0].endswith("with the same results: counted once")
    # ... and with a different result it cannot be one matrix.
    differs = copy.deepcopy(copied)
    full = unpack_report(differs)
    cell = next(cell for cell in full["cells"] if cell["ok"])
    cell.update(ok=False, outcome="refused")
    with pytest.raises(AuditMergeError) as error:
        merge_reports(parts([first, full]), NOW)
    assert str(error.value) == (
        "source host %s is in slice-1.json and slice-2.json with different results (as %s -> %s: success in one, "
        "refused in the other): each source host must be in one slice or site only"
        % (cell["source_host"], cell["row"].split("/")[1], cell["peer"]))


def test_old_reports_without_a_run_and_other_documents_are_refused(audit):
    old = copy.deepcopy(audit["slices"][0])
    del old["run"]
    with pytest.raises(AuditMergeError, match=r"^old.json: the report does not say which audit run"):
        merge_reports([("old.json", old)], NOW)
    with pytest.raises(AuditMergeError, match=r"^x.json: not a JSON report of dicom.network.echo_audit"):
        merge_reports([("x.json", {"hello": 1})], NOW)
    golive = dict(audit["slices"][0], standin={"device": {"name": "newct"}})
    with pytest.raises(AuditMergeError, match="go-live"):
        merge_reports([("g.json", golive)], NOW)


def test_select_run_takes_the_newest_run_or_the_one_asked_for(audit):
    older = copy.deepcopy(audit["slices"][0])
    older["run"]["id"] = "run-0"
    older["started_at"] = "2024-01-01T00:00:00Z"
    reports = [("old.json", older)] + parts(audit["slices"])
    kept, notes = select_run(reports)
    assert [source for source, _report in kept] == ["slice-1.json", "slice-2.json", "slice-3.json"]
    assert notes == ["merged the 3 report(s) of run run-1; 1 report(s) of other runs (run-0) left aside"]
    kept, _notes = select_run(reports, "run-0")
    assert [source for source, _report in kept] == ["old.json"]
    with pytest.raises(AuditMergeError, match=r"^no report of run run-9 among the 4 report\(s\) given"):
        select_run(reports, "run-9")


def test_read_reports_expands_globs_and_refuses_a_file_twice(tmp_path, audit):
    for index, report in enumerate(audit["slices"]):
        (tmp_path / ("s%d.json" % index)).write_text(json.dumps(unpack_report(report)))
    found = read_reports([str(tmp_path / "s*.json")])
    assert [path.rsplit("/", 1)[1] for path, _report in found] == ["s0.json", "s1.json", "s2.json"]
    assert normalised(merge_reports(found, NOW)) == normalised(audit["whole"])
    with pytest.raises(AuditMergeError, match=r"s0.json is listed twice"):
        read_reports([str(tmp_path / "s*.json"), str(tmp_path / "s0.json")])
    with pytest.raises(AuditMergeError, match=r"nothing\*.json matches no file$"):
        read_reports([str(tmp_path / "nothing*.json")])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(AuditMergeError, match=r"bad.json: not a JSON report .*invalid JSON"):
        read_reports([str(tmp_path / "bad.json")])


def test_run_identity_from_options_and_awx():
    digests = registry_digests([{"pacs": {"ae_title": "PACS", "tls": {"key_password": "a"}}}])
    same = registry_digests([{"pacs": {"ae_title": "PACS", "tls": {"key_password": "b"}}}])
    assert digests == same and len(digests["pacs"]) == 16
    identity, errors = run_identity("", None, None, "", {"job_id": 12, "workflow_job_id": "7"}, NOW, digests)
    assert errors == [] and identity["id"] == "awx-workflow-7" and identity["job"] == "awx-job-12"
    identity, errors = run_identity("", "2", "3", "north", {"job_id": 12}, NOW, digests)
    assert (identity["id"], identity["slice"], identity["slices"], identity["site"]) == ("awx-job-12", 2, 3, "north")
    identity, _errors = run_identity(None, None, None, None, None, NOW, digests)
    assert identity["id"].startswith("20261207T200000Z-")
    _identity, errors = run_identity("bad id!", 4, 3, "", {}, NOW, digests)
    assert errors[0].startswith("echo_audit_run_id must be") and errors[1] == "echo_audit_slice 4 is beyond echo_audit_slices 3"
    _identity, errors = run_identity("r", 0, "x", "", {}, NOW, digests)
    assert errors == ["echo_audit_slice must be a whole number >= 1, got 0",
                      "echo_audit_slices must be a whole number >= 1, got 'x'"]


def test_a_merged_report_merges_again_as_one_part(audit):
    """A site that slices its own audit merges its slices, and the central merge takes that site's merged report."""
    north_slices = copy.deepcopy(audit["slices"][:2])
    for report in north_slices:
        report["run"].update(site="north", slices=2)
    north = merge_reports(parts(north_slices), NOW)
    assert north["complete"] and north["run"]["site"] == "north"
    south = copy.deepcopy(audit["slices"][2])
    south["run"].update(slice=None, slices=None, site="south")
    fleet = merge_reports([("north.json", north), ("south.json", south)], NOW, planned_sites=["north", "south"])
    assert normalised(fleet) == normalised(audit["whole"])
    assert [part["label"] for part in fleet["run"]["parts"]] == ["site north", "site south"]
    # What a site's merge lacked, the central merge still says.
    lacking = merge_reports(parts(north_slices[:1]), NOW)
    assert lacking["partial_reasons"] == ["no report from slice 2 of 2"]
    fleet = merge_reports([("north.json", lacking), ("south.json", south)], NOW)
    assert fleet["partial_reasons"] == ["site north: no report from slice 2 of 2"]
