"""Makes the checkout importable as ``ansible_collections.dicom.network`` for every test and for
the ansible-playbook runs the tests start, and loads the real-peer fixtures."""
from __future__ import annotations

import os

from tests.collection_path import ensure_collection_path

os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(ensure_collection_path())

pytest_plugins = ["tests.peers.fixtures"]
