"""One audit run as three --limit slices (as AWX job slicing splits an inventory) and as one play, against real
peers on loopback: the merge playbook's report of the slices equals the play's, a missing slice makes it partial
and named, and the merges that cannot be one audit are refused with one line."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.peers.base import closed_port
from tests.system.test_audit_partial_runs import ANSIBLE_PLAYBOOK, REPO_ROOT, audit_command, run, write_inventory

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

HOSTS = ["src-%d" % number for number in range(1, 7)]
# AWX job slicing deals hosts out in turn; --limit does the same here.
SLICES = [HOSTS[number::3] for number in range(3)]


def inventory_for(directory: Path, peers, description: str = "archive") -> Path:
    accept, strict = peers["accept"], peers["reject-calling"]
    aes = {"archive": {"ae_title": accept.ae_title, "host": accept.host, "port": accept.port, "site": "A",
                       "description": description},
           "strict": {"ae_title": strict.ae_title, "host": strict.host, "port": strict.port, "site": "A"},
           "printer": {"ae_title": "PRINTER", "host": "127.0.0.1", "port": closed_port(), "site": "B"}}
    sources = {}
    for number, host in enumerate(HOSTS, start=1):
        aes["ae%d" % number] = {"ae_title": "SRC_%d" % number, "site": "A" if number % 2 else "B"}
        sources[host] = {"dicom_local_aes": ["ae%d" % number],
                         "dicom_peers": ["archive", {"name": "strict", "expect": "reject"},
                                         {"name": "printer", "expect": "blocked"}]}
    return write_inventory(directory, aes, sources)


def audit(tmp_path: Path, inventory: Path, name: str, *extra: str) -> Path:
    report_dir = tmp_path / name
    completed = run(audit_command(inventory, report_dir, "-e", "echo_audit_run_id=nightly-1", *extra), tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    return report_dir / "latest.json"


def merge(tmp_path: Path, inventory: Path, name: str, reports: List[Any], *extra: str):
    command = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(REPO_ROOT / "playbooks" / "merge.yml"),
               "-e", "echo_audit_report_dir=%s" % (tmp_path / name),
               "-e", json.dumps({"echo_audit_merge_reports": [str(report) for report in reports]}), *extra]
    started = time.monotonic()
    completed = run(command, tmp_path)
    return completed, time.monotonic() - started, tmp_path / name / "latest.json"


def normalised(path: Path) -> Dict[str, Any]:
    """A JSON report without times, stamps and its run's identity (which differ between any two runs)."""
    report = json.loads(path.read_text())
    for key in ("generated_at", "started_at", "run"):
        report.pop(key)
    for cell in report["cells"]:
        for key in ("rtt_ms", "timings_ms", "started_at"):
            cell.pop(key)
    return report


def one_line_failure(completed) -> str:
    """The failed task's message: one line, no traceback."""
    assert completed.returncode != 0, completed.stdout[-2000:]
    assert "Traceback" not in completed.stdout + completed.stderr
    lines = [line for line in completed.stdout.splitlines() if line.startswith("fatal:")]
    assert len(lines) == 1, completed.stdout[-3000:]
    return json.loads(lines[0].split("=> ", 1)[1])["msg"]


def test_three_limit_slices_merge_into_the_report_of_one_play(tmp_path, pynetdicom_peers):
    inventory = inventory_for(tmp_path / "inventory", pynetdicom_peers)
    slices = [audit(tmp_path, inventory, "slice-%d" % number, "--limit", ",".join(hosts),
                    "-e", "echo_audit_slice=%d" % number, "-e", "echo_audit_slices=3", "-e", "echo_audit_fail_on_unexpected=false")
              for number, hosts in enumerate(SLICES, start=1)]
    whole = audit(tmp_path, inventory, "whole", "-e", "echo_audit_fail_on_unexpected=false")
    first = json.loads(slices[0].read_text())
    assert first["run"]["id"] == "nightly-1" and (first["run"]["slice"], first["run"]["slices"]) == (1, 3)
    assert first["partial_reasons"] == ["hosts limited to src-1,src-4"]

    completed, seconds, merged = merge(tmp_path, inventory, "fleet", slices)
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert normalised(merged) == normalised(whole)
    document = json.loads(merged.read_text())
    assert document["complete"] and document["summary"]["total"] == 18
    assert [part["label"] for part in document["run"]["parts"]] == ["slice 1 of 3", "slice 2 of 3", "slice 3 of 3"]
    summary = completed.stdout[completed.stdout.index("TASK [dicom.network.echo_audit : Show the result]"):
                               completed.stdout.index("PLAY RECAP")]
    assert "merged 3 report(s) of run nightly-1: slice 1 of 3, slice 2 of 3, slice 3 of 3" in summary
    print("merge of 3 slices: %.1f s\n%s" % (seconds, summary))
    for fmt in ("html", "md", "csv", "junit.xml"):
        assert (merged.parent / ("latest.%s" % fmt)).is_file()

    # A fourth merge without slice 2: partial, naming the slice and its hosts.
    completed, _seconds, partial = merge(tmp_path, inventory, "partial", [slices[0], slices[2]],
                                         "-e", "echo_audit_fail_on_unexpected=false")
    assert completed.returncode == 0, completed.stdout[-3000:]
    document = json.loads(partial.read_text())
    assert not document["complete"]
    assert document["partial_reasons"][:2] == ["no report from slice 2 of 3",
                                               "2 planned source host(s) in no report: src-2, src-5"]
    assert "PARTIAL report: no report from slice 2 of 3; 2 planned source host(s) in no report: src-2, src-5" \
        in completed.stdout
    # Merged again into the same directory, keeping one run: the first merge's timestamped files go.
    first_run = sorted(path.name for path in partial.parent.glob("echo-audit-*"))
    completed, _seconds, _latest = merge(tmp_path, inventory, "partial", [slices[0], slices[2]],
                                         "-e", "echo_audit_fail_on_unexpected=false", "-e", "echo_audit_report_keep=1")
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert first_run and not set(first_run) & {path.name for path in partial.parent.glob("echo-audit-*")}
    assert "Deleted %d report file(s) of older runs, beyond echo_audit_report_keep=1." % len(first_run) \
        in completed.stdout

    # The same slice twice (its latest.json and its own timestamped file).
    own = next(path for path in slices[0].parent.glob("echo-audit-*.json"))
    message = one_line_failure(merge(tmp_path, inventory, "twice", [slices[0], own] + slices[1:])[0])
    assert message == "the reports cannot be merged: slice 1 of 3 is listed twice: %s and %s" % (slices[0], own)

    # A source host in two reports with different results.
    other = json.loads(slices[0].read_text())
    other["run"].update(slice=None, slices=None, site="elsewhere")
    cell = next(cell for cell in other["cells"] if cell["source_host"] == "src-1" and cell["peer"] == "archive")
    cell.update(outcome="refused", ok=False)
    conflicting = tmp_path / "elsewhere.json"
    conflicting.write_text(json.dumps(other))
    message = one_line_failure(merge(tmp_path, inventory, "overlap", slices + [conflicting])[0])
    assert message == ("the reports cannot be merged: source host src-1 is in %s and %s with different results (as "
                       "ae1 -> archive: success in one, refused in the other): each source host must be in one slice "
                       "or site only" % (slices[0], conflicting))

    # Slice 3 again after the registry changed: a different registry, named.
    changed = inventory_for(tmp_path / "inventory-changed", pynetdicom_peers, description="archive, new rack")
    again = audit(tmp_path, changed, "slice-3-again", "--limit", ",".join(SLICES[2]), "-e", "echo_audit_slice=3",
                  "-e", "echo_audit_slices=3", "-e", "echo_audit_fail_on_unexpected=false")
    message = one_line_failure(merge(tmp_path, inventory, "registry", slices[:2] + [again])[0])
    assert message.startswith("the reports cannot be merged: %s and %s were built from different registries "
                              "(dicom_aes): archive differs" % (slices[0], again))
