"""Publishing and e-mail of the echo audit, for real: playbooks/audit.yml against two pynetdicom SCPs and a
closed port on loopback, published to an inventory host (local connection, reached with delegate_to) and
to localhost, an SMTP sink with STARTTLS and AUTH on 127.0.0.1, community.general from the setup's cache.

Three whole audits; the failures publishing must stop at run the role's publish tasks alone."""
from __future__ import annotations

import grp
import json
import os
import re
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

from tests.collection_path import COLLECTIONS_ROOT
from tests.peers.base import closed_port
from tests.peers.pynetdicom_peers import start_pynetdicom_peers
from tests.peers.smtp_sink import SmtpSink

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_URL = "https://pacs-reports.example.org/echo"
INJECTED = "<script>alert(1)</script>"
# A run stamp published before these tests by hand, as a symlink to a directory outside: pruning it
# must remove the link only.
SEEDED = "20000101T000000Z"
# A run directory history.json does not list: never deleted, even though its name is a stamp.
UNLISTED = "20000102T000000Z"
ALL_FORMATS = {"json", "html", "md", "csv", "junit.xml", "prom"}
PASSWORD = "s3cret-Pa55-for-the-sink"
GROUP = "daemon"  # in every Debian and RHEL base system


def _extra_collections() -> str:
    """The collections path with community.general that scripts/lib/setup.sh provides, or ""."""
    path = os.environ.get("DICOM_NETWORK_EXTRA_COLLECTIONS", "")
    return path if path and (Path(path) / "ansible_collections" / "community" / "general").is_dir() else ""


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """Two accepting SCPs, a closed port, and an inventory: source host src-1 and publish host reports-server."""
    workdir = tmp_path_factory.mktemp("publish")
    proc, peers = start_pynetdicom_peers(workdir / "peers", {
        "accept": ({"behaviour": "accept", "ae_title": "ACCEPT_SCP"}, ""),
        "accept2": ({"behaviour": "accept", "ae_title": "ACCEPT2_SCP"}, ""),
    }, prefix="publish")
    try:
        aes = {name: {"ae_title": peer.ae_title, "host": peer.host, "port": peer.port} for name, peer in peers.items()}
        aes["off"] = {"ae_title": "OFF_SCP", "host": "127.0.0.1", "port": closed_port()}
        aes["me"] = {"ae_title": "AUDIT_SCU", "host": "127.0.0.1", "port": closed_port()}
        inventory = workdir / "inventory"
        (inventory / "group_vars" / "all").mkdir(parents=True)
        (inventory / "group_vars" / "all" / "dicom_aes.json").write_text(json.dumps({"dicom_aes": aes}))
        (inventory / "hosts.json").write_text(json.dumps({"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            # Not a source host: only reached through delegate_to, with its own connection settings.
            "hosts": {"reports-server": None},
            "children": {"dicom_sources": {"hosts": {"src-1": {"dicom_local_aes": ["me"],
                                                               "dicom_peers": ["accept"]}}}},
        }}))
        yield SimpleNamespace(workdir=workdir, inventory=inventory / "hosts.json")
    finally:
        proc.stop()


def audit(network, name: str, extra: Dict[str, Any], collections: str = str(COLLECTIONS_ROOT),
          verbose: bool = False) -> SimpleNamespace:
    """Run playbooks/audit.yml with these extra vars; the custom stats (set_stats) come back parsed."""
    run_dir = network.workdir / name
    run_dir.mkdir()
    variables = {"echo_audit_report_dir": str(run_dir / "reports"), "echo_audit_connect_timeout": 3,
                 "echo_audit_acse_timeout": 5, "echo_audit_dimse_timeout": 5}
    variables.update(extra)
    (run_dir / "vars.json").write_text(json.dumps(variables))
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(network.inventory),
         str(REPO_ROOT / "playbooks" / "audit.yml"), "-e", "@%s" % (run_dir / "vars.json")] + (["-v"] if verbose else []),
        cwd=str(run_dir), capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_COLLECTIONS_PATH=collections,
                 ANSIBLE_LOCAL_TEMP=str(run_dir / "tmp")))
    output = completed.stdout + completed.stderr
    stats = re.search(r"^\s*RUN: (\{.*\})\s*$", completed.stdout, re.MULTILINE)
    return SimpleNamespace(rc=completed.returncode, output=output, stats=json.loads(stats.group(1)) if stats else None,
                           reports=run_dir / "reports")


def tree(root: Path) -> Dict[str, Any]:
    """Every path under root with its kind, mode and content (symlinks not followed)."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        relative = str(path.relative_to(root))
        if stat.S_ISLNK(info.st_mode):
            found[relative] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            found[relative] = ("dir", stat.S_IMODE(info.st_mode))
        else:
            found[relative] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return found


class Page(HTMLParser):
    """Tags with their attributes, and the text, of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: List[tuple] = []
        self.text: List[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> List[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


@pytest.fixture(scope="module")
def published(network, tls_material):
    """Three audits published to reports-server with keep 2; the first and the third fail their checks.

    The second one also mails its summary to an SMTP sink (STARTTLS, AUTH PLAIN), when the setup
    provided community.general, and runs with -v to show that the password still does not leak.
    """
    root = network.workdir / "site"
    outside = network.workdir / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("must survive")
    (root / "runs" / "keep-me").mkdir(parents=True)
    (root / "runs" / "keep-me" / "note").write_text("not a run")
    (root / "runs" / UNLISTED).mkdir()
    (root / "runs" / SEEDED).symlink_to(outside, target_is_directory=True)
    # A history as an earlier version of the role wrote it, listing the seeded run.
    (root / "history.json").write_text(json.dumps({
        "kind": "dicom.network.echo_audit publish history", "schema_version": 1, "updated_at": None,
        "runs": [{"stamp": SEEDED, "generated_at": "2000-01-01T00:00:00Z", "title": "seeded", "formats": ["html"],
                  "total": 4, "ok": 1, "failed": 3, "not_run": 0}]}))
    common = {"echo_audit_publish_host": "reports-server", "echo_audit_publish_dir": str(root),
              "echo_audit_publish_keep": 2, "echo_audit_publish_base_url": BASE_URL,
              # A group other than the test's own (it runs as root), so that setting it shows.
              "echo_audit_publish_group": GROUP}
    extra_collections = _extra_collections()
    sink = SmtpSink(tls=(tls_material["server_cert"], tls_material["server_key"]), users={"audit": PASSWORD})
    mail = {"echo_audit_mail_enabled": True, "echo_audit_mail_host": "127.0.0.1", "echo_audit_mail_port": sink.port,
            "echo_audit_mail_secure": "starttls", "echo_audit_mail_timeout": 10,
            "echo_audit_mail_from": "DICOM audit <audit@hospital.example.org>",
            "echo_audit_mail_to": ["pacs-team@hospital.example.org"],
            "echo_audit_mail_username": "audit", "echo_audit_mail_password": PASSWORD}
    # Two formats and no journal in runs 1 and 3: each report and module call costs ~0.7 s of CPU.
    lean = {"echo_audit_report_formats": ["json", "html"], "echo_audit_journal": False}
    plans = [
        # 1 of 2 ok: the closed port was expected to accept.
        ("run1", dict(lean, dicom_peers=["accept", "off"]), {}),
        # 1 of 1 ok, every format; mailed.
        ("run2", dict({"dicom_peers": ["accept"]}, **(mail if extra_collections else {})),
         {"collections": os.pathsep.join([str(COLLECTIONS_ROOT), extra_collections]), "verbose": True}
         if extra_collections else {}),
        # 2 of 3 ok (the second SCP accepts, though it should reject), and a title that is markup.
        ("run3", dict(lean, dicom_peers=["accept", {"name": "off", "expect": "blocked"},
                                         {"name": "accept2", "expect": "reject"}], echo_audit_title=INJECTED), {}),
    ]
    runs, states = [], []
    with sink:
        for name, extra, options in plans:
            runs.append(audit(network, name, dict(common, **extra), **options))
            states.append({"history": json.loads((root / "history.json").read_text()),
                           "runs": sorted(p.name for p in (root / "runs").iterdir()),
                           "sentinel": (outside / "sentinel").exists()})
        messages = sink.wait_for(1, timeout=5) if extra_collections else None
    stamps = [run.stats["echo_audit"]["published"]["stamp"] if run.stats else None for run in runs]
    return SimpleNamespace(root=root, outside=outside, runs=runs, states=states, stamps=stamps,
                           mail=SimpleNamespace(messages=messages, logins=sink.logins) if extra_collections else None)


def test_every_run_was_published_the_failing_ones_too(published):
    for run in published.runs:
        assert run.stats is not None, run.output[-4000:]
        assert "Traceback" not in run.output
    assert [run.rc for run in published.runs] == [2, 0, 2], published.runs[0].output[-3000:]
    assert len(set(published.stamps)) == 3 and published.stamps == sorted(published.stamps)
    # After the first run the seeded run is still within the two kept.
    assert [r["stamp"] for r in published.states[0]["history"]["runs"]] == [published.stamps[0], SEEDED]


def test_keep_two_leaves_exactly_the_two_newest_runs_and_deletes_nothing_else(published):
    runs = published.root / "runs"
    stamped = {p.name for p in runs.iterdir() if re.fullmatch(r"[0-9]{8}T[0-9]{6}Z", p.name)}
    assert stamped == {published.stamps[1], published.stamps[2], UNLISTED}
    # The seeded run was pruned by the second run: its symlink went, what it pointed to did not.
    assert SEEDED in published.states[0]["runs"] and SEEDED not in published.states[1]["runs"]
    assert (published.outside / "sentinel").read_text() == "must survive"
    assert (runs / "keep-me" / "note").exists() and (runs / UNLISTED).is_dir()
    # Each run directory has the formats that run wrote.
    assert {p.name[len("report."):] for p in (runs / published.stamps[1]).iterdir()} == ALL_FORMATS
    assert {p.name[len("report."):] for p in (runs / published.stamps[2]).iterdir()} == {"json", "html"}


def test_published_reports_are_the_controller_reports(published):
    run = published.runs[2]
    stamp = published.stamps[2]
    for extension in ("json", "html"):
        local = run.reports / ("echo-audit-%s.%s" % (stamp, extension))
        assert (published.root / "runs" / stamp / ("report." + extension)).read_bytes() == local.read_bytes()


def test_history_lists_the_kept_runs_with_their_pass_rates(published):
    document = json.loads((published.root / "history.json").read_text())
    runs = document["runs"]
    assert [r["stamp"] for r in runs] == [published.stamps[2], published.stamps[1]]
    assert [r["pass_rate"] for r in runs] == [66.7, 100.0]
    for entry in runs:
        report = json.loads((published.root / entry["path"] / "report.json").read_text())
        summary = report["summary"]
        assert [entry[k] for k in ("total", "ok", "failed", "not_run")] == [
            summary["total"], summary["ok"], summary["failed"], summary["not_run"]]
        assert entry["generated_at"] == report["generated_at"] and entry["complete"] is report["complete"] is True
        assert entry["files"]["html"] == "runs/%s/report.html" % entry["stamp"]
    assert runs[0]["title"] == INJECTED  # stored as it is; the page escapes it
    assert [r["formats"] for r in runs] == [["json", "html"], ["json", "html", "md", "csv", "junit", "prom"]]


def test_index_lists_runs_newest_first_with_rates_and_a_trend_point_per_run(published):
    text = (published.root / "index.html").read_text()
    page = Page(text)
    rows = [attrs["data-stamp"] for attrs in page.all("tr") if "data-stamp" in attrs]
    assert rows == [published.stamps[2], published.stamps[1]]
    body = text[text.index('<table id="runs">'):]
    assert body.index("66.7 %") < body.index("100.0 %")
    (trend,) = [svg for svg in page.all("svg") if svg.get("id") == "trend"]
    history = json.loads((published.root / "history.json").read_text())
    # Besides the pass-rate chart, a round-trip sparkline per pair of the kept runs, no more.
    assert len(page.all("svg")) == 1 + len({pair for run in history["runs"] for pair in run["rtt"] or {}})
    (polyline,) = [line for line in page.all("polyline") if "class" in line]
    points = [tuple(float(v) for v in pair.split(",")) for pair in polyline["points"].split()]
    assert len(points) == 2 and len(page.all("circle")) == 2
    # Oldest on the left; the 100 % run is drawn higher (smaller y) than the 66.7 % one.
    (x_old, y_old), (x_new, y_new) = points
    assert x_old < x_new and y_old < y_new
    links = {attrs["href"] for attrs in page.all("a")}
    assert "runs/%s/report.html" % published.stamps[2] in links
    assert all((published.root / link).is_file() for link in links)


def test_index_is_self_contained_and_escapes_the_injected_title(published):
    text = (published.root / "index.html").read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"(https?:)?//", text), "the index must not reference anything outside"
    assert not any("src" in attrs for _tag, attrs in Page(text).tags)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert INJECTED in "".join(Page(text).text)  # shown as text


def test_published_files_are_0640_and_directories_0750_in_the_group(published):
    root = published.root
    gid = grp.getgrnam(GROUP).gr_gid
    directories = [root, root / "runs"] + [root / "runs" / stamp for stamp in published.stamps[1:]]
    files = [root / "history.json", root / "index.html"] + [
        path for stamp in published.stamps[1:] for path in (root / "runs" / stamp).iterdir()]
    for path in directories:
        assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_gid) == (0o750, gid), path
    for path in files:
        assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_gid) == (0o640, gid), path


def test_the_job_output_and_set_stats_name_the_index_and_the_run(published):
    run, stamp, root = published.runs[2], published.stamps[2], published.root
    assert "published on reports-server: %s/index.html" % root in run.output
    assert "index: %s/index.html" % BASE_URL in run.output
    assert "this run: %s/runs/%s/report.html" % (BASE_URL, stamp) in run.output
    # A run directory history.json does not list (an interrupted publish) is named, not silently kept forever.
    assert "not in history.json, so neither shown nor ever pruned (an interrupted publish, or two at once?): " \
           "runs/%s; remove them by hand" % UNLISTED in run.output, run.output[-3000:]
    stats = run.stats["echo_audit"]
    assert stats["published"]["url"] == BASE_URL + "/index.html"
    assert stats["published"]["index"] == "%s/index.html" % root
    assert stats["published"]["run_url"] == "%s/runs/%s/report.html" % (BASE_URL, stamp)
    assert stats["published"]["pruned"] == [published.stamps[0]]
    assert stats["published"]["kept"] == [stamp, published.stamps[1]]
    # report.yml's keys are still there next to the new one.
    assert stats["summary"]["total"] == 3 and stats["title"] == INJECTED
    # A complete run wrote latest.*; run_reports are this run's own files, whatever latest.* holds later.
    assert stats["complete"] is True and stats["partial_reasons"] == []
    assert stats["reports"] == {"json": str(run.reports / "latest.json"), "html": str(run.reports / "latest.html")}
    assert stats["run_reports"]["html"] == str(run.reports / ("echo-audit-%s.html" % stamp))
    # The verdict is there before the play fails on it, for a workflow to branch on.
    assert stats["verdict"] == {"failed": True, "reasons": ["1 of 3 check(s) not ok"]}


def publish_only(network, name: str, variables: Dict[str, Any]) -> SimpleNamespace:
    """The role's publish tasks alone (include_role tasks_from: publish), without an audit before them.

    Seconds instead of a whole audit, for failures publishing must stop at; the internal variables
    report.yml leaves behind are given from an earlier run's report where a test needs them.
    """
    run_dir = network.workdir / name
    run_dir.mkdir()
    (run_dir / "play.yml").write_text(json.dumps([{
        "name": name, "hosts": "src-1", "gather_facts": False, "vars": variables,
        "tasks": [{"name": "the role's publishing", "ansible.builtin.include_role": {
            "name": "dicom.network.echo_audit", "tasks_from": "publish"}}]}]))
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(network.inventory), str(run_dir / "play.yml")],
        cwd=str(run_dir), capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT),
                 ANSIBLE_LOCAL_TEMP=str(run_dir / "tmp")))
    return SimpleNamespace(rc=completed.returncode, output=completed.stdout + completed.stderr)


def test_a_corrupt_history_stops_publishing_before_anything_changes(network, published):
    root = network.workdir / "corrupt"
    (root / "runs" / "20240101T000000Z").mkdir(parents=True)
    (root / "runs" / "20240101T000000Z" / "report.html").write_text("old")
    (root / "index.html").write_text("<p>old index</p>")
    (root / "history.json").write_text('{"kind": "dicom.network.echo_audit publish history", "runs": [')
    before = tree(root)
    report = published.runs[2].reports / ("echo-audit-%s.json" % published.stamps[2])
    run = publish_only(network, "corrupt-run", {
        # The implicit localhost this time, not an inventory host.
        "echo_audit_publish_host": "localhost", "echo_audit_publish_dir": str(root), "echo_audit_publish_keep": 1,
        # What the report step leaves for publishing: the report's head, its formats and this run's files.
        "__echo_audit_report": {"head": json.loads(report.read_text()), "formats": ["json"],
                                "run_reports": {"json": str(report)}}})
    assert run.rc != 0
    assert "localhost:%s/history.json: not valid JSON" % root in run.output
    assert "Nothing was written or deleted on localhost" in run.output
    assert "Traceback" not in run.output
    assert tree(root) == before


def test_a_failed_publish_still_shows_the_result_and_the_local_reports(network):
    """A publish directory that is a file once ended the play before the operator saw what the audit found
    or where the reports are: the summary still comes last, with the reason publishing failed."""
    not_a_directory = network.workdir / "publish-is-a-file"
    not_a_directory.write_text("a file where the publish directory should be")
    run = audit(network, "publish-fails", {"echo_audit_publish_host": "localhost",
                                           "echo_audit_publish_dir": str(not_a_directory),
                                           "echo_audit_report_formats": ["json"], "echo_audit_journal": False,
                                           "dicom_peers": ["accept", "off"]})
    assert run.rc != 0
    assert "DICOM echo audit: 2 checks, 1 ok, 1 failed, 0 not run" in run.output, run.output[-3000:]
    assert "reports: %s/latest.{json}" % run.reports in run.output, run.output[-3000:]
    shown = run.output.rindex("TASK [dicom.network.echo_audit : Show the result]")
    summary = run.output[shown:run.output.index("PLAY RECAP")]
    assert "DICOM echo audit: 2 checks" in summary, run.output[-3000:]
    assert 'publishing failed at "Look for a history and an index page in the publish directory": Not a directory' \
        in summary, run.output[-3000:]
    assert json.loads((run.reports / "latest.json").read_text())["summary"]["total"] == 2
    assert not_a_directory.read_text() == "a file where the publish directory should be"


def test_the_markdown_summary_is_mailed_over_starttls_with_login(published):
    if published.mail is None:
        pytest.skip("DICOM_NETWORK_EXTRA_COLLECTIONS (community.general) is not set up: run through ./scripts/test")
    run, stamp = published.runs[1], published.stamps[1]
    assert run.rc == 0, run.output[-4000:]
    assert len(published.mail.messages) == 1
    (message,) = published.mail.messages
    assert message.tls and message.user == "audit"
    assert published.mail.logins == [("audit", PASSWORD, True)]
    assert message.rcpt_to == ["<pacs-team@hospital.example.org>"]
    email = message.message()
    assert email["Subject"] == "DICOM echo audit: all ok, 1 of 1 checks ok (100.0 %), 0 failed, 0 not run"
    assert email["To"] == "pacs-team@hospital.example.org"
    body = message.text()
    assert "Index: %s/index.html" % BASE_URL in body
    assert "This run: %s/runs/%s/report.html" % (BASE_URL, stamp) in body
    # The Markdown report itself, as the md file on the controller has it.
    markdown = (run.reports / ("echo-audit-%s.md" % stamp)).read_text()
    assert "## Summary" in markdown and markdown.strip() in body
    # Even with -v, the password is nowhere in the job output.
    assert PASSWORD not in run.output


def test_mail_without_community_general_fails_early_saying_so(network):
    root = network.workdir / "not-mailed-site"
    run = publish_only(network, "no-collection-run", {
        "echo_audit_publish_host": "reports-server", "echo_audit_publish_dir": str(root),
        "echo_audit_mail_enabled": True, "echo_audit_mail_from": "audit@hospital.example.org",
        "echo_audit_mail_to": ["pacs-team@hospital.example.org"]})
    assert run.rc != 0
    assert "echo_audit_mail_enabled is true but the module community.general.mail is not installed" in run.output
    assert "Traceback" not in run.output
    # Checked before publishing: nothing was written on the publish host.
    assert not root.exists()
