"""One audit run on the controller (audit_run.py): options, the journal, the report files and the verdict."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.dicom.network.plugins.plugin_utils import audit_run
from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import resolve_hosts
from ansible_collections.dicom.network.plugins.plugin_utils.audit_run import (
    AuditRunError,
    check_options,
    read_journal,
    report_run,
    start_journal,
)
from ansible_collections.dicom.network.plugins.plugin_utils.echo_controller import journal_record, write_journal
from tests.unit.plugins.plugin_utils.test_audit_matrix import module_result

TEMPLATES = str(Path(__file__).resolve().parents[4] / "roles" / "echo_audit" / "templates")
REGISTRY = {
    "ws1": {"ae_title": "WS1", "host": "127.0.0.1", "port": 11112},
    "scu": {"ae_title": "SCU_ONLY"},
    "pacs": {"ae_title": "PACS", "host": "127.0.0.1", "port": 11114,
             "tls": {"enabled": True, "cert_file": "/etc/c.pem", "key_file": "/etc/k.pem", "key_password": "s3cret"}},
}
HOSTS = {
    "h1": {"dicom_aes": REGISTRY, "dicom_local_aes": ["ws1"], "peer_lists": {"dicom_peers": ["pacs"]}},
    "h2": {"dicom_aes": REGISTRY, "dicom_local_aes": ["scu"], "peer_lists": {"dicom_peers": ["pacs", "ws1"]}},
}
RAW = {"report_dir": "reports", "report_formats": "json,html , md,csv,junit", "report_prefix": "echo-audit",
       "markdown_max_columns": "30", "report_max_failures": 200, "console_max_lines": 20, "report_dir_mode": "0750",
       "journal": True, "fail_on_unexpected": True, "fail_on_regression": False, "baseline": "",
       "baseline_save": False, "baseline_save_partial": False, "only_peers": None, "title": "Audit"}


def options(tmp_path, **changes):
    checked, errors = check_options(dict(RAW, **changes), cwd=str(tmp_path))
    assert errors == []
    os.makedirs(checked["report_dir"], exist_ok=True)
    return checked


def plans():
    resolved, errors = resolve_hosts(HOSTS, tls={"key_password": "m0dule"})
    assert errors == []
    return resolved


def journal_with_results(tmp_path, opts, outcomes=None):
    the_plans = plans()
    directory = start_journal(opts, {"started_at": "2026-12-07T10:00:00Z"}, the_plans, check_mode=False)
    for host, plan in the_plans.items():
        results = [module_result(peer, call["calling_ae_title"], (outcomes or {}).get((host, peer["name"]), "success"))
                   for call in plan["calls"] for peer in call["peers"]]
        record = journal_record(host, host, None, {"changed": False, "results": results, "msg": "done",
                                                   "invocation": {"module_args": {"tls": {"key_password": "x"}}}})
        write_journal(os.path.join(directory, "%s.json" % host), record)
    return directory


def test_options_from_the_command_line_and_their_errors_name_the_variable(tmp_path):
    checked, errors = check_options(dict(RAW, only_peers="pacs, ws1"), cwd=str(tmp_path))
    assert errors == [] and checked["report_formats"] == ["json", "html", "md", "csv", "junit"]
    assert checked["only_peers"] == ["pacs", "ws1"] and checked["markdown_max_columns"] == 30
    assert checked["report_dir"] == str(tmp_path / "reports")
    _checked, errors = check_options(dict(RAW, report_formats="html,pdf", console_max_lines="-1",
                                          report_dir_mode="abc", baseline_scope="some"), cwd=str(tmp_path))
    assert errors == ["echo_audit_report_formats: pdf is not a report format (choose from json, html, md, csv, junit, prom)",
                      "echo_audit_console_max_lines must be a whole number >= 0, got -1",
                      'echo_audit_report_dir_mode must be an octal mode in quotes like "0750", got abc',
                      "echo_audit_baseline_scope must be all or run, got 'some'"]


def test_the_journal_never_holds_a_secret(tmp_path):
    opts = options(tmp_path)
    directory = journal_with_results(tmp_path, opts)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o750
    assert os.path.basename(directory).startswith(".journal-20261207T100000Z-")
    for name in os.listdir(directory):
        text = Path(directory, name).read_text()
        assert "s3cret" not in text and "m0dule" not in text, name
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o640
    document, entries = read_journal(directory)
    peer = document["plans"]["h1"]["calls"][0]["peers"][0]
    assert peer["tls"]["key_password"] == "********" and len(entries) == 2


def test_the_plan_file_holds_each_ae_once_and_reads_as_the_plans(tmp_path):
    the_plans = plans()
    directory = start_journal(options(tmp_path), {"started_at": "2026-12-07T10:00:00Z"}, the_plans, check_mode=False)
    written = json.loads(Path(directory, "plan.json").read_text())
    # pacs is a peer of both hosts and ws1 a row of one and a peer of the other: each is written once.
    assert sorted(entry["name"] for entry in written["aes"]) == ["pacs", "scu", "ws1"]
    assert all(isinstance(index, int) for plan in written["plans"].values() for index in plan["aes"].values())
    document, _entries = read_journal(directory)
    assert {host: plan["aes"] for host, plan in document["plans"].items()} == \
        {host: plan["aes"] for host, plan in the_plans.items()}
    # The journal of an interrupted run of 0.1.0 has every plan's AEs inline: recover reads it as it was.
    del written["aes"]
    for host, plan in written["plans"].items():
        plan["aes"] = the_plans[host]["aes"]
    Path(directory, "plan.json").write_text(json.dumps(written))
    assert read_journal(directory)[0]["plans"] == written["plans"]
    broken = dict(written, aes=[], plans={host: dict(plan, aes={"pacs": 5}) for host, plan in written["plans"].items()})
    Path(directory, "plan.json").write_text(json.dumps(broken))
    with pytest.raises(AuditRunError, match="plan.json is not the plan of a dicom.network audit"):
        read_journal(directory)


def test_without_journal_the_plan_goes_to_a_temporary_directory(tmp_path):
    opts = options(tmp_path, journal=False)
    directory = start_journal(opts, {"started_at": "2026-12-07T10:00:00Z"}, plans(), check_mode=False)
    assert not directory.startswith(opts["report_dir"]) and os.path.isfile(os.path.join(directory, "plan.json"))


def test_a_run_writes_every_format_0640_with_latest_and_the_calling_only_row(tmp_path):
    opts = options(tmp_path, baseline_save=True)
    document, entries = read_journal(journal_with_results(tmp_path, opts, {("h2", "ws1"): "refused"}))
    outcome = report_run(document, entries, opts, TEMPLATES)
    assert outcome["changed"] and outcome["verdict"] == {"failed": True, "reasons": ["1 of 3 check(s) not ok"]}
    assert outcome["lines"][0].startswith("Audit: 3 checks, 2 ok, 1 failed, 0 not run")
    assert outcome["lines"][-2] == "reports: %s/latest.{json,html,md,csv,junit.xml}" % opts["report_dir"]
    names = sorted(os.listdir(opts["report_dir"]))
    assert [name for name in names if name.startswith("latest.")] == [
        "latest.csv", "latest.html", "latest.json", "latest.junit.xml", "latest.md"]
    for name in names:
        if not name.startswith("."):
            assert stat.S_IMODE(os.stat(os.path.join(opts["report_dir"], name)).st_mode) == 0o640, name
    report = json.loads(Path(opts["report_dir"], "latest.json").read_text())
    assert {row["calling_ae_title"] for row in report["rows"]} == {"WS1", "SCU_ONLY"}
    assert "SCU_ONLY" not in {column["ae_title"] for column in report["columns"]}
    assert Path(opts["report_dir"], "baseline.json").read_text() == Path(opts["report_dir"], "latest.json").read_text()
    # A second run of the same second names its reports -2 and leaves the first run's alone.
    stamp = outcome["name"][len("echo-audit-"):]
    again = dict(opts, baseline_save=False)
    assert audit_run._free_name(again, stamp) == outcome["name"] + "-2"
    second = report_run(document, entries, again, TEMPLATES, name=audit_run._free_name(again, stamp))
    assert second["name"] == outcome["name"] + "-2"
    assert Path(outcome["run_reports"]["json"]).exists() and Path(second["run_reports"]["json"]).exists()


def test_runs_beyond_report_keep_are_deleted_and_nothing_else(tmp_path):
    opts = options(tmp_path, report_keep="2", baseline="reports/echo-audit-20261101T010000Z.json")
    # (20261101's run is written first, by a real run: its JSON is the baseline the next run is judged against.)
    directory = Path(opts["report_dir"])
    older = ["echo-audit-20261101T010000Z.json", "echo-audit-20261101T010000Z.html",
             "echo-audit-20261102T010000Z.json", "echo-audit-20261102T010000Z-2.csv",
             "echo-audit-20261103T010000Z.junit.xml", "echo-audit-20261103T010000Z.prom"]
    others = ["latest.json", "baseline.json", "echo-audit-20261101T010000Z-interrupted.json", "notes.txt",
              "other-20261101T010000Z.json", "echo-audit-20261101T010000Z.json.bak", "echo-audit-2026.json"]
    document, entries = read_journal(journal_with_results(tmp_path, opts))
    first = report_run(document, entries, dict(opts, baseline=""), TEMPLATES, name="echo-audit-20261101T010000Z")
    assert first["pruned"] == []  # the baseline it will be, and it is
    for name in older[1:] + others:
        if (directory / name).exists():
            (directory / name).unlink()  # latest.* is a hard link of the run's file
        (directory / name).write_text(name)
    outcome = report_run(document, entries, opts, TEMPLATES)
    # This run and the newest older one (20261103) stay; the baseline named by echo_audit_baseline too.
    first_files = sorted(path for path in first["run_reports"].values() if not path.endswith(".json"))
    assert outcome["pruned"] == first_files + [str(directory / name) for name in (
        "echo-audit-20261102T010000Z.json", "echo-audit-20261102T010000Z-2.csv")]
    left = set(os.listdir(directory))
    this_run = {os.path.basename(path) for path in outcome["run_reports"].values()}
    assert set(others) | this_run | {"echo-audit-20261101T010000Z.json", "echo-audit-20261103T010000Z.junit.xml",
                                     "echo-audit-20261103T010000Z.prom"} <= left
    assert not left & {os.path.basename(path) for path in outcome["pruned"]}
    assert "Deleted %d report file(s) of older runs, beyond echo_audit_report_keep=2." % (len(first_files) + 2) \
        in outcome["lines"]
    # Check mode deletes nothing, and says what it would; 0 keeps every run.
    again = report_run(document, entries, dict(opts, report_keep=1), TEMPLATES, check_mode=True)
    assert again["pruned"] and all(Path(path).exists() for path in again["pruned"])
    assert report_run(document, entries, dict(opts, report_keep=0), TEMPLATES, check_mode=True)["pruned"] == []


def test_check_mode_writes_nothing_and_says_what_it_would(tmp_path):
    opts = options(tmp_path)
    document, entries = read_journal(journal_with_results(tmp_path, opts))
    before = sorted(os.listdir(opts["report_dir"]))
    outcome = report_run(document, entries, opts, TEMPLATES, check_mode=True)
    assert sorted(os.listdir(opts["report_dir"])) == before
    assert outcome["reports"] == {} and len(outcome["would_write"]) == 10
    assert outcome["lines"][-1].startswith("Audit: 3 checks, 3 ok") and "check mode, not written" in outcome["lines"][-1]


def test_a_broken_journal_is_named(tmp_path):
    directory = tmp_path / ".journal-x"
    directory.mkdir()
    with pytest.raises(AuditRunError, match="has no plan.json"):
        read_journal(str(directory))
    (directory / "plan.json").write_text("{")
    with pytest.raises(AuditRunError, match="plan.json cannot be read"):
        read_journal(str(directory))
