# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one guarded import of pynetdicom, so a target without it gets Ansible's standard message."""

from __future__ import annotations

import sys
import traceback

# pydicom imports numpy (for pixel data) and requests (to download its test files) whenever they
# are installed. An echo needs neither, and every module process would pay for them: importing
# pynetdicom took 0.26 s with both installed against 0.155 s without them (2-core Xeon,
# benchmarks/README.md). A None entry in sys.modules makes their import fail at once, which
# pydicom takes as "not installed" for the rest of the process (pixel data needs numpy; an echo
# never decodes any). The entries are removed right after, so an import of numpy or requests
# elsewhere in the process still gets the real package.
_NOT_NEEDED_BY_AN_ECHO = ("numpy", "requests")
_blocked = [name for name in _NOT_NEEDED_BY_AN_ECHO if name not in sys.modules]
for _name in _blocked:
    sys.modules[_name] = None  # type: ignore[assignment]
try:
    import pynetdicom  # noqa: F401, pylint: disable=unused-import
except ImportError:
    HAS_PYNETDICOM = False
    PYNETDICOM_IMPORT_ERROR = traceback.format_exc()
    PYNETDICOM_VERSION = None
else:
    HAS_PYNETDICOM = True
    PYNETDICOM_IMPORT_ERROR = None
    PYNETDICOM_VERSION = getattr(pynetdicom, "__version__", "unknown")
finally:
    for _name in _blocked:
        if sys.modules.get(_name, False) is None:
            del sys.modules[_name]


def ensure_pynetdicom(module) -> None:
    """Fail the module with the standard missing-library message when pynetdicom is absent."""
    if not HAS_PYNETDICOM:
        module.fail_json(
            msg="pynetdicom is not installed for this host's Python (%s): install it with the dicom.network.echo_venv "
                "role (in an audit: echo_audit_install_venv: true), or point ansible_python_interpreter at a Python "
                "that has pynetdicom 2.0 or newer" % sys.executable,
            exception=PYNETDICOM_IMPORT_ERROR,
        )
