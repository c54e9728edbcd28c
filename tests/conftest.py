"""Makes the checkout importable as ``ansible_collections.dicom.network``.

Ansible only loads collection code under an ``ansible_collections/<ns>/<name>`` path,
so the tests build that path once as a symlink (enough for Python and
ansible-playbook; only ansible-test needs a real copy).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO_ROOT / "tests" / "output" / "collections"


def _link_collection() -> None:
    namespace_dir = COLLECTIONS_ROOT / "ansible_collections" / "dicom"
    namespace_dir.mkdir(parents=True, exist_ok=True)
    link = namespace_dir / "network"
    if not link.is_symlink():
        tmp = namespace_dir / f".network.{os.getpid()}"
        tmp.symlink_to(REPO_ROOT, target_is_directory=True)
        os.replace(tmp, link)


_link_collection()
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS_ROOT)

pytest_plugins = ["tests.peers.fixtures"]
