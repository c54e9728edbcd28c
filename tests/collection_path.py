"""The checkout as ``ansible_collections/dicom/network``, for the tests, the demo and the benchmarks.

Ansible only loads collection code under an ``ansible_collections/<ns>/<name>`` path, so this
builds that path once as a symlink under tests/output (enough for Python and ansible-playbook;
only ansible-test needs a real copy).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO_ROOT / "tests" / "output" / "collections"


def ensure_collection_path() -> Path:
    """Create the symlink if needed, put it on sys.path, and return the collections root."""
    namespace_dir = COLLECTIONS_ROOT / "ansible_collections" / "dicom"
    namespace_dir.mkdir(parents=True, exist_ok=True)
    link = namespace_dir / "network"
    if not link.is_symlink():
        tmp = namespace_dir / (".network.%d" % os.getpid())
        tmp.symlink_to(REPO_ROOT, target_is_directory=True)
        os.replace(tmp, link)
    if str(COLLECTIONS_ROOT) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_ROOT))
    return COLLECTIONS_ROOT
