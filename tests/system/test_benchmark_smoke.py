"""The benchmark harness works: ``benchmarks/run.py --smoke`` exits 0 and prints its tables.

Smoke mode runs every scenario at a tiny size through the delay proxy (real peers, the engine,
ansible-playbook, the echo_audit role when it exists, headless Chromium when installed). Timings
are never asserted here: this machine is shared, and a missed target is not a failure.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_smoke_runs_and_prints_a_table(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--smoke", "--json", str(out)],
                          cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300, check=False)
    report = "stdout:\n%s\nstderr:\n%s" % (done.stdout[-6000:], done.stderr[-3000:])
    assert done.returncode == 0, report
    assert "| scenario | condition | measurement | wall s |" in done.stdout, report
    assert "| target | what | measured | threshold | verdict | best possible on this machine |" in done.stdout, report
    assert "| floor | - | ansible-playbook with one ansible.builtin.ping task" in done.stdout, report
    assert "| 1 many peers | proxy 5 ms | dicom.network.echo via ansible-playbook |" in done.stdout, report
    document = json.loads(out.read_text())
    assert document["errors"] == []
    assert {row["scenario"].split()[0] for row in document["rows"]} >= {"1", "2", "5"}
    assert all(target["verdict"] in ("PASS", "MISS", "n/a") for target in document["targets"])
    # The speed-up targets carry what any client could reach here: the Ansible floor plus the peers' CPU.
    bounds = [t["best_possible"] for t in document["targets"] if t["key"].startswith("1b")]
    assert bounds and all("any client: " in bound and "(Ansible floor " in bound for bound in bounds), bounds


def _git_commit(rev: str):
    """The commit ``rev`` names in this checkout, or None where there is no git or no checkout."""
    try:
        done = subprocess.run(["git", "--no-optional-locks", "-C", str(REPO_ROOT), "rev-parse", "--verify",
                               rev + "^{commit}"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def test_ab_smoke_runs_and_prints_one_table(tmp_path):
    """``benchmarks/ab.py --smoke`` against HEAD (a commit any checkout has, shallow clones too):
    the three variants measured, one table with the issue's thresholds, no harness error."""
    commit = _git_commit("HEAD")
    if commit is None:
        pytest.skip("benchmarks/ab.py exports a commit with git archive: this is not a git checkout")
    out = tmp_path / "ab.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "ab.py"), "--before", "HEAD", "--smoke",
                           "--json", str(out)], cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=300, check=False)
    report = "stdout:\n%s\nstderr:\n%s" % (done.stdout[-6000:], done.stderr[-3000:])
    assert done.returncode == 0, report
    header = "| measurement | before `%s` | after | after-stock | after/before | stock/before | threshold (issue 19) " \
             "| after | after-stock (floor) |" % commit[:7]
    assert header in done.stdout, report
    document = json.loads(out.read_text())
    assert document["errors"] == [], report
    assert document["before"]["commit"] == commit
    keys = [row["key"] for row in document["rows"]]
    assert keys == ["s1_loopback", "s1_loopback_engine", "s1_proxy", "s1_proxy_engine", "s2_engine",
                    "s2_engine_ratio", "s2_module_ratio", "memory_mb"], keys
    for row in document["rows"]:
        assert "| %s |" % row["measurement"] in done.stdout, (row["measurement"], report)
        assert {variant: len(values) for variant, values in row["samples"].items()} == \
            {"before": 1, "after": 1, "after-stock": 1}, row
        assert set(row["verdict"].values()) <= {"PASS", "MISS", "-"}, row
    judged = [row["key"] for row in document["rows"] if row["threshold"] != "-"]
    assert judged == ["s1_loopback", "s1_proxy", "s2_engine_ratio", "s2_module_ratio", "memory_mb"], judged


def test_ab_audit_smoke_runs_and_prints_one_table(tmp_path):
    """``benchmarks/ab_audit.py --smoke`` against HEAD: scenario 3 (2 hosts x 3 peers) and scenario 4
    (10 x 10) for both variants, one table with issue 18's thresholds, no harness error."""
    commit = _git_commit("HEAD")
    if commit is None:
        pytest.skip("benchmarks/ab_audit.py exports a commit with git archive: this is not a git checkout")
    out = tmp_path / "ab-audit.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "ab_audit.py"), "--before", "HEAD",
                           "--smoke", "--json", str(out)], cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300, check=False)
    report = "stdout:\n%s\nstderr:\n%s" % (done.stdout[-6000:], done.stderr[-3000:])
    assert done.returncode == 0, report
    header = "| measurement | before `%s` | after | after/before | threshold (issue 18) | verdict |" % commit[:7]
    assert header in done.stdout, report
    document = json.loads(out.read_text())
    assert document["errors"] == [], report
    assert document["scenario4_unmeasured"] == {}, report
    assert document["before"]["commit"] == commit
    keys = [row["key"] for row in document["rows"]]
    assert keys == ["s3_wall", "s3_plan", "s3_echo", "s3_report", "s3_show", "s3_rest", "s4_report", "s4_playbook",
                    "s4_html_mb", "s4_interactive"], keys
    for row in document["rows"]:
        assert "| %s |" % row["measurement"] in done.stdout, (row["measurement"], report)
        expected = 0 if row["key"] == "s4_interactive" and not row["samples"]["after"] else 1
        assert {variant: len(values) for variant, values in row["samples"].items()} == \
            {"before": expected, "after": expected}, row
        assert row["verdict"] in ("PASS", "MISS", "-"), row
    judged = [row["key"] for row in document["rows"] if row["threshold"] != "-"]
    assert judged == ["s3_wall", "s4_report"], judged


def test_services_smoke_runs_and_prints_its_rows_and_targets(tmp_path):
    """``benchmarks/services.py --smoke``: every server and kind measured on both conditions, the two
    targets of issue 20 judged, and the floor (pynetdicom's own requestor) given with the discovery one."""
    out = tmp_path / "services.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "services.py"), "--smoke", "--json",
                           str(out)], cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300, check=False)
    report = "stdout:\n%s\nstderr:\n%s" % (done.stdout[-6000:], done.stderr[-3000:])
    assert done.returncode == 0, report
    document = json.loads(out.read_text())
    measured = {(row["condition"], row["what"]) for row in document["rows"]}
    for condition in ("loopback", "proxy 5 ms"):
        for server in ("orthanc", "dcmqrscp", "pynetdicom"):
            for kind in ("plain", "5 services", "discover storage", "pynetdicom loop, discover storage"):
                assert (condition, "%s: %s" % (server, kind)) in measured, (condition, server, kind, report)
    assert [(t["key"], t["verdict"] in ("PASS", "MISS")) for t in document["targets"]] == [("20a", True), ("20b", True)]
    assert "pynetdicom's own requestor" in document["targets"][1]["best_possible"]
    assert "| 20b | discover storage vs a plain echo, per association |" in done.stdout, report


def test_merge_benchmark_smoke_runs_and_prints_its_table(tmp_path):
    """``benchmarks/merge.py`` at 3 x 2 hosts x 3 peers, through ansible-playbook too: exit 0 (its merged report
    equals the single play's, or it exits 1), one table and the merged report's summary."""
    out = tmp_path / "merge.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.merge", "--hosts", "6", "--peers", "3", "--playbook",
                           "--json", str(out)], cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=300, check=False)
    report = "stdout:\n%s\nstderr:\n%s" % (done.stdout[-6000:], done.stderr[-3000:])
    assert done.returncode == 0, report
    assert [row["what"].split(" ")[0] for row in json.loads(out.read_text())["rows"]] == \
        ["read", "report", "ansible-playbook"], report
    assert "Synthetic audit: 18 checks" in done.stdout, report
    assert "merged 3 report(s) of run bench-merge: slice 1 of 3, slice 2 of 3, slice 3 of 3" in done.stdout, report
