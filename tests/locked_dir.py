"""A directory the test process cannot write to, also as root (which ignores permission bits)."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """Create ``path`` read-only: chmod 0500 for a user, the immutable flag (chattr +i) for root."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        try:
            yield path
        finally:
            path.chmod(0o700)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        path.rmdir()
        pytest.skip("cannot make %s immutable (chattr +i) on this file system" % path)
    try:
        yield path
    finally:
        # Else pytest could not remove its tmp_path.
        subprocess.run(["chattr", "-i", str(path)], check=True)
