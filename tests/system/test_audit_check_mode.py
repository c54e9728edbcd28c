"""Check mode of a whole audit (playbooks/audit.yml --check) against the demo hospital: the echoes run
(they are read-only), the matrix and the verdict come out as in a real run, and nothing is written on
the controller: no report, no latest.*, no baseline, no journal, no temporary file, nothing published."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest

from tests.peers.base import closed_port, stop_all
from tests.peers.demo_network import start_network, write_inventory

pytestmark = [pytest.mark.peers, pytest.mark.ansible]

REPO_ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("json", "html", "md", "csv", "junit.xml")


def _snapshot(directory: Path) -> Dict[str, Tuple[bytes, int, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_mode)
            for path in directory.iterdir()}


def test_check_mode_runs_the_whole_audit_and_writes_nothing(tmp_path):
    procs, aes = start_network(tmp_path / "peers")
    try:
        inventory = write_inventory(tmp_path / "inventory", aes, closed_port())

        published = tmp_path / "published"

        def audit(report_dir: Path) -> subprocess.CompletedProcess:
            return subprocess.run(
                [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                 str(REPO_ROOT / "playbooks" / "audit.yml"), "--check", "--diff",
                 "-e", "echo_audit_report_dir=%s" % report_dir, "-e", "echo_audit_baseline_save=true",
                 # The demo network has deliberate faults: without this the verdict fails the play.
                 "-e", "echo_audit_fail_on_unexpected=false",
                 "-e", "echo_audit_connect_timeout=3", "-e", "echo_audit_acse_timeout=5",
                 "-e", "echo_audit_dimse_timeout=5",
                 # Publishing is configured but there is nothing to publish in check mode.
                 "-e", "echo_audit_publish_host=localhost", "-e", "echo_audit_publish_dir=%s" % published],
                cwd=str(tmp_path), capture_output=True, text=True, timeout=600, check=False,
                env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_FORKS="8"))

        # A report directory with earlier reports: they stay exactly as they are.
        kept = tmp_path / "kept"
        kept.mkdir()
        for extension in FORMATS:
            (kept / ("latest.%s" % extension)).write_text("earlier report\n")
            (kept / ("latest.%s" % extension)).chmod(0o640)
        before = _snapshot(kept)
        completed = audit(kept)
        output = completed.stdout + completed.stderr
        # 4: the demo's unreachable source host, shown as unreachable under its own name; the rest ran.
        assert completed.returncode == 4, output[-4000:]
        assert "fatal: [us-a1]: UNREACHABLE!" in completed.stdout
        assert "Traceback" not in output
        assert re.search(r"DICOM echo audit: \d+ checks, \d+ ok", completed.stdout), completed.stdout[-3000:]
        # --diff names what would be written, never the reports' content.
        assert "would write" in completed.stdout
        for extension in FORMATS:
            assert "%s/latest.%s" % (kept, extension) in completed.stdout, extension
        assert "-earlier report" not in completed.stdout
        assert len(completed.stdout.splitlines()) < 120, completed.stdout
        assert "reports (check mode, not written): %s/latest.{" % kept in completed.stdout
        assert _snapshot(kept) == before
        assert not published.exists()
        assert "journal was not written" not in output
        assert not list(kept.glob(".journal-*"))

        # A report directory that does not exist yet: it is not created either.
        fresh = tmp_path / "fresh"
        completed = audit(fresh)
        assert completed.returncode == 4, (completed.stdout + completed.stderr)[-4000:]
        assert not fresh.exists()
        assert "reports (check mode, not written): %s/latest.{" % fresh in completed.stdout
        assert "access issue" not in completed.stdout + completed.stderr
    finally:
        stop_all(procs)
