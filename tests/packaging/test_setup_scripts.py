"""scripts/demo and scripts/test install what each needs on a fresh machine, and no more.

apt is the one step a test cannot repeat for real here (every package is installed), so
``dpkg-query`` and ``apt-get`` are replaced on PATH: every package reads as missing, and
apt-get records what it was asked to install. The venv step runs for real (already done: a
no-op), and so does scripts/demo, up to demo.py's --help.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from tests.packaging.conftest import REPO_ROOT

TEST_ONLY = {"chromium", "chromium-driver", "iptables", "nftables", "iproute2", "shellcheck", "openssl"}


@pytest.fixture()
def fake_apt(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("the setup installs apt packages only as root")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nprintf 'un '\n")
    (bin_dir / "apt-get").write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> %s\n' % log)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]),
               DICOM_NETWORK_VENV=str(Path(sys.executable).parent.parent))

    def installed(completed: subprocess.CompletedProcess) -> List[str]:
        assert completed.returncode == 0, completed.stdout + completed.stderr
        lines = log.read_text().splitlines()
        assert lines[0] == "update -qq", lines
        words = lines[-1].split()
        assert words[:4] == ["install", "-y", "-qq", "--no-install-recommends"], lines
        return words[4:]

    return env, installed


def test_the_demo_installs_its_peers_and_venv_only(fake_apt):
    env, installed = fake_apt
    completed = subprocess.run([str(REPO_ROOT / "scripts" / "demo"), "--help"], env=env, capture_output=True,
                               text=True, timeout=300, check=False)
    packages = installed(completed)
    assert sorted(packages) == ["ca-certificates", "dcmtk", "orthanc", "python3-venv"]
    assert "usage:" in completed.stdout
    # The tests' extras are not set up: no Python 3.9 venv, wheelhouse or extra collections.
    for step in ("py39:", "wheelhouse:", "collections"):
        assert step not in completed.stderr, completed.stderr


def test_the_test_setup_installs_the_demo_packages_and_the_test_tools(fake_apt):
    env, installed = fake_apt
    script = 'source scripts/lib/setup.sh && _setup_apt "${APT_PACKAGES[@]}"'
    completed = subprocess.run(["bash", "-c", script], cwd=str(REPO_ROOT), env=env, capture_output=True, text=True,
                               timeout=60, check=False)
    packages = set(installed(completed))
    assert {"ca-certificates", "dcmtk", "orthanc", "python3-venv"} | TEST_ONLY <= packages
