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
