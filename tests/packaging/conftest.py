"""The collection as users get it: built once per session with ``ansible-galaxy collection build``
from the checkout and installed from that tarball into a temporary collections path.

Tests that run Ansible against the installed copy use ``installed_env()``: the temporary path is
the only place Ansible looks for collections, so the checkout (which tests/conftest.py puts on
ANSIBLE_COLLECTIONS_PATH for every other test) can never stand in for a broken installed copy.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def galaxy_metadata() -> Dict:
    return yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())


def run(command: List[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool with output captured; the caller asserts on the result."""
    kwargs.setdefault("timeout", 300)
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False, **kwargs)


def build_collection(source: Path, output: Path) -> Path:
    """``ansible-galaxy collection build`` of a checkout; returns the tarball."""
    output.mkdir(parents=True, exist_ok=True)
    completed = run([VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", output, source],
                    env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (tarball,) = output.glob("dicom-network-*.tar.gz")
    return tarball


def tar_members(tarball: Path) -> List[str]:
    """Every member path of a tarball, directories without their trailing slash."""
    with tarfile.open(tarball) as archive:
        return [member.name.rstrip("/") for member in archive.getmembers()]


def installed_env(collections_path: Path, **extra: str) -> Dict[str, str]:
    """Environment for ansible-* commands that must use only the collection under collections_path."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_path),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False", ANSIBLE_NOCOLOR="1")
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def built_collection(tmp_path_factory) -> SimpleNamespace:
    """The checkout's tarball and a collections path holding it installed (built and installed once)."""
    work = tmp_path_factory.mktemp("collection-build")
    tarball = build_collection(REPO_ROOT, work / "dist")
    collections_path = work / "collections"
    # A tarball install needs no Galaxy server; --offline makes sure it never asks one.
    completed = run([VENV_BIN / "ansible-galaxy", "collection", "install", "--offline", tarball,
                     "-p", collections_path], env=installed_env(collections_path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    installed = collections_path / "ansible_collections" / "dicom" / "network"
    assert (installed / "MANIFEST.json").is_file(), completed.stdout
    return SimpleNamespace(tarball=tarball, members=tar_members(tarball), collections_path=collections_path,
                           installed=installed, version=galaxy_metadata()["version"])
