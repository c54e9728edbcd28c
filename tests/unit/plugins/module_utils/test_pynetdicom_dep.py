# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module process imports pynetdicom without the numpy and requests that pydicom would pull in.

Each check runs a fresh interpreter (an import happens once per process) with stand-in ``numpy``
and ``requests`` packages first on its path: each records in a file that it was imported, so the
check does not depend on what this machine has installed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.collection_path import COLLECTIONS_ROOT, ensure_collection_path

_PROBE = r"""
import json, sys
from ansible_collections.dicom.network.plugins.module_utils import %(module)s
from ansible_collections.dicom.network.plugins.module_utils import _pynetdicom_dep as dep
left = {name: repr(sys.modules[name]) for name in ("numpy", "requests") if name in sys.modules}
import requests  # the stand-in: importable again once pynetdicom is in
print(json.dumps({"has_pynetdicom": dep.HAS_PYNETDICOM, "left_in_sys_modules": left,
                  "requests_after": requests.__name__}))
"""


def _import_fresh(tmp_path: Path, module: str) -> dict:
    ensure_collection_path()
    marker = tmp_path / "imported"
    for name in ("numpy", "requests"):
        package = tmp_path / "standins" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            "with open(%r, 'a') as handle:\n    handle.write(%r + '\\n')\n" % (str(marker), name))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "standins"), str(COLLECTIONS_ROOT)]))
    done = subprocess.run([sys.executable, "-c", _PROBE % {"module": module}], capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    report["imported"] = marker.read_text().split() if marker.exists() else []
    return report


def test_the_module_imports_pynetdicom_without_numpy_or_requests(tmp_path):
    report = _import_fresh(tmp_path, "_pynetdicom_dep")
    assert report["has_pynetdicom"] is True
    # Only the probe's own import of requests afterwards, never numpy, and nothing left blocked.
    assert report["imported"] == ["requests"], report
    assert report["left_in_sys_modules"] == {}, report
    assert report["requests_after"] == "requests"


def test_the_engine_imports_pynetdicom_the_same_way(tmp_path):
    report = _import_fresh(tmp_path, "echo_engine")
    assert report["imported"] == ["requests"], report
    assert report["left_in_sys_modules"] == {}, report
